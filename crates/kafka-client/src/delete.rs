//! Deleting topics and consumer groups: what a restore drill created in a scratch target, and
//! nothing the caller did not name.

use std::collections::BTreeMap;

use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteTopicsRequest, GroupId, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::KafkaClient;
use crate::error::{Error, Result};
use crate::groups::broker_error;

/// DeleteTopics v6 names topics in `topics` (with optional ids) instead of `topic_names`.
const FIRST_VERSION_WITH_TOPIC_STATES: i16 = 6;

impl KafkaClient {
    /// Deletes `topics` through the controller. Returns each topic with the broker's error,
    /// if any (UNKNOWN_TOPIC_OR_PARTITION for one already gone, TOPIC_AUTHORIZATION_FAILED,
    /// ...); fails only when the request cannot be made.
    pub async fn delete_topics(&self, topics: &[String]) -> Result<Vec<(String, Option<Error>)>> {
        if topics.is_empty() {
            return Ok(Vec::new());
        }
        let timeout_ms =
            i32::try_from(self.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
        let (label, responses) = self
            .retry("DeleteTopics", |_| async move {
                let conn = match self.metadata().controller_id {
                    Some(id) => self.broker_connection(id).await?,
                    None => self.any_connection().await?,
                };
                let version = conn.version::<DeleteTopicsRequest>()?;
                let mut request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
                let names = topics
                    .iter()
                    .map(|t| TopicName(StrBytes::from_string(t.clone())));
                request = if version >= FIRST_VERSION_WITH_TOPIC_STATES {
                    request.with_topics(
                        names
                            .map(|n| DeleteTopicState::default().with_name(Some(n)))
                            .collect(),
                    )
                } else {
                    request.with_topic_names(names.collect())
                };
                let response = conn
                    .send_at(
                        &request,
                        version,
                        std::time::Duration::from_millis(timeout_ms as u64),
                    )
                    .await?;
                Ok((conn.label().to_owned(), response.responses))
            })
            .await?;
        let mut by_name: BTreeMap<String, Option<Error>> = BTreeMap::new();
        for r in &responses {
            let name = r.name.as_ref().map(|n| n.to_string()).unwrap_or_default();
            let error = broker_error(
                &label,
                "DeleteTopics",
                Some(format!("topic {name}")),
                r.error_code,
                r.error_message.as_ref(),
            );
            by_name.insert(name, error);
        }
        Ok(topics
            .iter()
            .map(|t| {
                let error = by_name.remove(t).unwrap_or_else(|| {
                    Some(Error::Protocol {
                        broker: label.clone(),
                        detail: format!("its DeleteTopics answer does not mention topic {t}"),
                    })
                });
                (t.clone(), error)
            })
            .collect())
    }

    /// Deletes the consumer groups `groups` (each asked of its coordinator). Returns each
    /// group with the broker's error, if any (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP for one with
    /// members, ...); fails only when brokers cannot be reached.
    pub async fn delete_groups(&self, groups: &[String]) -> Result<Vec<(String, Option<Error>)>> {
        let mut out = Vec::with_capacity(groups.len());
        for g in groups {
            let id = self.find_coordinator(g).await?;
            let (label, results) = self
                .retry("DeleteGroups", |_| async move {
                    let conn = self.broker_connection(id).await?;
                    let request = DeleteGroupsRequest::default()
                        .with_groups_names(vec![GroupId(StrBytes::from_string(g.clone()))]);
                    let response = conn.send(&request).await?;
                    Ok((conn.label().to_owned(), response.results))
                })
                .await?;
            let error = match results.iter().find(|r| r.group_id.as_str() == g) {
                Some(r) => broker_error(
                    &label,
                    "DeleteGroups",
                    Some(format!("group {g}")),
                    r.error_code,
                    None,
                ),
                None => Some(Error::Protocol {
                    broker: label.clone(),
                    detail: format!("its DeleteGroups answer does not mention group {g}"),
                }),
            };
            out.push((g.clone(), error));
        }
        Ok(out)
    }
}
