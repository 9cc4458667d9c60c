//! Which API versions this client speaks, and the choice made per connection from the
//! broker's ApiVersions answer: the highest version both sides support.

use std::collections::BTreeMap;

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

/// One API this client uses, with the versions our code handles. `min` is the oldest version
/// whose fields we can fill correctly; `max` the newest we have written and tested code for.
#[derive(Debug, Clone, Copy)]
pub struct ApiSupport {
    /// The API.
    pub key: ApiKey,
    /// Its name as in the Kafka protocol guide.
    pub name: &'static str,
    /// Oldest version we can use.
    pub min: i16,
    /// Newest version we use.
    pub max: i16,
}

const fn api(key: ApiKey, name: &'static str, min: i16, max: i16) -> ApiSupport {
    ApiSupport {
        key,
        name,
        min,
        max,
    }
}

/// The APIs this client uses. The minimums follow from what the tool needs: record batches v2
/// (Produce v3, Fetch v4), isolation levels and aborted-transaction lists (Fetch v4), and
/// SaslAuthenticate framing (SaslHandshake v1).
pub const SUPPORTED_APIS: &[ApiSupport] = &[
    api(ApiKey::ApiVersions, "ApiVersions", 0, 3),
    api(ApiKey::SaslHandshake, "SaslHandshake", 1, 1),
    api(ApiKey::SaslAuthenticate, "SaslAuthenticate", 0, 2),
    api(ApiKey::Metadata, "Metadata", 1, 12),
    api(ApiKey::ListOffsets, "ListOffsets", 1, 9),
    api(ApiKey::Fetch, "Fetch", 4, 17),
    api(ApiKey::Produce, "Produce", 3, 11),
    api(ApiKey::InitProducerId, "InitProducerId", 0, 4),
    api(ApiKey::FindCoordinator, "FindCoordinator", 1, 4),
    api(ApiKey::ListGroups, "ListGroups", 0, 4),
    api(ApiKey::DescribeGroups, "DescribeGroups", 0, 5),
    api(ApiKey::OffsetFetch, "OffsetFetch", 1, 7),
    api(ApiKey::OffsetCommit, "OffsetCommit", 2, 8),
    api(ApiKey::CreateTopics, "CreateTopics", 2, 7),
    api(ApiKey::DescribeConfigs, "DescribeConfigs", 1, 4),
    api(ApiKey::DeleteTopics, "DeleteTopics", 1, 6),
    api(ApiKey::DeleteGroups, "DeleteGroups", 0, 2),
];

/// Our support entry for an API key.
pub fn support_for(key: ApiKey) -> Option<&'static ApiSupport> {
    SUPPORTED_APIS.iter().find(|a| a.key == key)
}

/// The name of an API key for messages.
pub fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        Ok(k) => support_for(k)
            .map(|s| s.name.to_owned())
            .unwrap_or_else(|| format!("{k:?}")),
        Err(_) => format!("api {key}"),
    }
}

/// The outcome of negotiation for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NegotiatedApi {
    /// The API key.
    pub key: i16,
    /// What the broker offers, if it offers the API at all.
    pub broker: Option<(i16, i16)>,
    /// The version we will use, when the ranges overlap.
    pub chosen: Option<i16>,
}

/// The versions chosen on one connection.
#[derive(Debug, Clone, Default)]
pub struct ApiVersions {
    broker: BTreeMap<i16, (i16, i16)>,
}

impl ApiVersions {
    /// Records what the broker offered.
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        let broker = response
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Self { broker }
    }

    /// The highest version of `key` both sides support, or `None` when the ranges do not
    /// overlap or the broker lacks the API.
    pub fn chosen(&self, key: ApiKey) -> Option<i16> {
        let ours = support_for(key)?;
        let &(bmin, bmax) = self.broker.get(&(key as i16))?;
        let v = ours.max.min(bmax);
        (v >= ours.min.max(bmin)).then_some(v)
    }

    /// What the broker offers for `key`, for error messages.
    pub fn offered(&self, key: ApiKey) -> String {
        match self.broker.get(&(key as i16)) {
            Some((min, max)) => format!("versions {min} to {max}"),
            None => "no version at all".to_owned(),
        }
    }

    /// The negotiation result for every API this client uses.
    pub fn negotiated(&self) -> Vec<NegotiatedApi> {
        SUPPORTED_APIS
            .iter()
            .map(|a| NegotiatedApi {
                key: a.key as i16,
                broker: self.broker.get(&(a.key as i16)).copied(),
                chosen: self.chosen(a.key),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn response(keys: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse::default().with_api_keys(
            keys.iter()
                .map(|(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(*k as i16)
                        .with_min_version(*min)
                        .with_max_version(*max)
                })
                .collect(),
        )
    }

    #[test]
    fn picks_the_highest_common_version() {
        let v = ApiVersions::from_response(&response(&[
            (ApiKey::Fetch, 0, 11),
            (ApiKey::Produce, 0, 99),
            (ApiKey::Metadata, 0, 0),
        ]));
        assert_eq!(v.chosen(ApiKey::Fetch), Some(11));
        assert_eq!(v.chosen(ApiKey::Produce), Some(11), "capped at ours");
        assert_eq!(v.chosen(ApiKey::Metadata), None, "broker too old");
        assert_eq!(v.chosen(ApiKey::ListOffsets), None, "absent");
        assert_eq!(v.offered(ApiKey::ListOffsets), "no version at all");
        assert_eq!(v.offered(ApiKey::Metadata), "versions 0 to 0");
    }

    #[test]
    fn our_ranges_are_within_what_the_codec_supports() {
        for a in SUPPORTED_APIS {
            let codec = a.key.valid_versions();
            assert!(
                a.min >= codec.min && a.max <= codec.max && a.min <= a.max,
                "{}: {}..{} vs codec {}",
                a.name,
                a.min,
                a.max,
                codec
            );
        }
    }
}
