//! A broker's `host:port`: parsed from `bootstrap_servers` and metadata, and the name every
//! connection, TLS check and SASL exchange (a Kerberos service principal is per host) goes by.

use std::fmt;
use std::str::FromStr;

/// A broker's `host:port`, as given in `bootstrap_servers` or advertised in metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl BrokerAddress {
    /// Builds an address from its parts.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for BrokerAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Why a `host:port` string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{input}` is not a broker address: {reason}; write it as host:port, e.g. kafka-1.example.com:9093"
)]
pub struct BrokerAddressError {
    /// The text given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl FromStr for BrokerAddress {
    type Err = BrokerAddressError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| BrokerAddressError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        // Listener URLs such as SSL://host:9093 are what people paste from broker configs.
        let s = match s.split_once("://") {
            Some((_, rest)) => rest,
            None => s,
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| err("unclosed `[`"))?;
            let port = after.strip_prefix(':').ok_or_else(|| err("missing port"))?;
            (host, port)
        } else {
            s.rsplit_once(':').ok_or_else(|| err("missing port"))?
        };
        if host.is_empty() {
            return Err(err("missing host"));
        }
        if host.contains(char::is_whitespace) || host.contains('/') {
            return Err(err("the host contains a space or `/`"));
        }
        let port: u16 = port
            .parse()
            .map_err(|_| err("the port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(err("the port is not a number from 1 to 65535"));
        }
        Ok(Self::new(host, port))
    }
}
