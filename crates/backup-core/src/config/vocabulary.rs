//! The vocabulary the configuration's sections are written in: keywords from a fixed set of
//! names, the list shapes (a value or a list of them, server lists), the key-name tables that
//! messages and scrubbing share, and the typo suggestions made from them. It depends on no
//! section, so every section can use it.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Error as _, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use super::env::{ConfigString, expand_visited};

/// Every key of `security:`; kept beside the struct so that the two change together.
pub(crate) const SECURITY_KEYS: &[&str] = &[
    "security_protocol",
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "ssl_ca_location",
    "ssl_certificate_location",
    "ssl_key_location",
    "ssl_key_password",
    "ssl_endpoint_identification_algorithm",
    "sasl_kerberos_service_name",
    "sasl_keytab_path",
    "sasl_krb5_config_path",
    "sasl_kerberos_principal",
    "sasl_oauthbearer_token_endpoint_url",
    "sasl_oauthbearer_client_id",
    "sasl_oauthbearer_client_secret",
    "sasl_oauthbearer_scope",
    "sasl_oauthbearer_extensions",
    "sasl_oauthbearer_token_file",
    "sasl_oauthbearer_ca_location",
    "sasl_oauthbearer_allow_http",
    "sasl_options",
];

/// The keys whose values are secrets, wherever they appear.
pub(crate) const SECRET_KEYS: &[&str] = &[
    "sasl_password",
    "sasl_oauthbearer_client_secret",
    "ssl_key_password",
    "secret_key",
    "secret_access_key",
    "session_token",
    "account_key",
    "sas_token",
];

/// A value from a fixed set of names, matched without regard to ASCII case.
pub(crate) trait KeywordSet: Sized + Copy {
    /// The names offered in errors and suggestions, in their canonical spelling.
    const NAMES: &'static [&'static str];

    /// The value a name (possibly an accepted alias) stands for.
    fn from_name(name: &str) -> Option<Self>;
}

/// A keyword value with the line it came from. It goes through [`ConfigString`], so
/// `security_protocol: ${PROTOCOL}` works, and an unknown name is serde's `unknown_variant`
/// error, which carries the list of valid names.
#[derive(Clone, Copy)]
pub(crate) struct Keyword<T> {
    pub value: T,
    pub line: Option<u32>,
}

impl<T: fmt::Debug> fmt::Debug for Keyword<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, T: KeywordSet> Deserialize<'de> for Keyword<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = ConfigString::deserialize(deserializer)?;
        match T::from_name(text.value.trim()) {
            Some(value) => Ok(Self {
                value,
                line: text.line,
            }),
            None => Err(D::Error::unknown_variant(&text.value, T::NAMES)),
        }
    }
}

pub(super) fn find_name<T: Copy>(name: &str, table: &[(&str, T)]) -> Option<T> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

/// `bootstrap_servers`: a list, or one comma-separated string (as in Kafka's own
/// `bootstrap.servers`). Entries are split and checked by `validate`.
#[derive(Debug)]
pub(crate) struct RawServers(pub Vec<ConfigString>);

/// The node before the line is attached to a single-string form.
enum ServersNode {
    One(String),
    Many(Vec<ConfigString>),
}

impl<'de> Deserialize<'de> for ServersNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ServersNode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of host:port strings, or one comma-separated string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                expand_visited(v).map(ServersNode::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<ConfigString>()? {
                    entries.push(entry);
                }
                Ok(ServersNode::Many(entries))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for RawServers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let node = Spanned::<ServersNode>::deserialize(deserializer)?;
        Ok(Self(match node.value {
            ServersNode::Many(entries) => entries,
            ServersNode::One(value) => vec![ConfigString {
                value,
                line: u32::try_from(node.referenced.line())
                    .ok()
                    .filter(|&l| l > 0),
            }],
        }))
    }
}

/// A value that may be one string or a list of strings (`identity_files`, `key_files`,
/// `verify_key`), each with its line.
#[derive(Debug, Default)]
pub(crate) struct StringList(pub Vec<ConfigString>);

/// The node before the line is attached to a single-string form.
enum ListNode {
    One(String),
    Many(Vec<ConfigString>),
}

impl<'de> Deserialize<'de> for ListNode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ListNode;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a file path, or a list of file paths")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                expand_visited(v).map(ListNode::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<ConfigString>()? {
                    entries.push(entry);
                }
                Ok(ListNode::Many(entries))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let node = Spanned::<ListNode>::deserialize(deserializer)?;
        Ok(Self(match node.value {
            ListNode::Many(entries) => entries,
            ListNode::One(value) => vec![ConfigString {
                value,
                line: u32::try_from(node.referenced.line())
                    .ok()
                    .filter(|&l| l > 0),
            }],
        }))
    }
}

/// A section that may be one mapping or a list of them (`restore.encryption`).
#[derive(Debug)]
pub(crate) struct OneOrMany<T> {
    /// The mappings, in order.
    pub items: Vec<T>,
    /// Whether it was written as one mapping rather than a list.
    pub single: bool,
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a mapping, or a list of mappings")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(|one| OneOrMany {
                    items: vec![one],
                    single: true,
                })
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut all = Vec::new();
                while let Some(one) = seq.next_element::<T>()? {
                    all.push(one);
                }
                Ok(OneOrMany {
                    items: all,
                    single: false,
                })
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

/// The closest candidate, compared without case, when it is close enough to be a typo.
pub(crate) fn suggest<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let input = input.trim().to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (c, strsim::jaro_winkler(&input, &c.to_ascii_lowercase())))
        .filter(|(_, score)| *score >= 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| *c)
}
