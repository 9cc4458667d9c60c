//! The syslog sink: each event as an RFC 5424 message (formatted by the `syslog` crate) to a
//! syslog server over TCP (RFC 6587 octet-counted framing, so a message is never split or
//! run together), UDP, or a local datagram socket such as `/dev/log`.
//!
//! The message's MSG is the event's JSON line, signed like every other sink's (a syslog
//! stream has no earlier line the writer can read, so it is not chained); its MSGID is 1 for
//! `start` and 2 for `end`; its severity is `notice`, `warning` for a partial outcome and
//! `err` for a failure.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{TcpStream, ToSocketAddrs, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use syslog::{Facility, Formatter5424, LogFormat, Severity};

use super::{AuditError, AuditEvent, Outcome, Phase};

/// How long connecting and sending may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where the messages go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// `tcp://HOST:PORT`.
    Tcp(String),
    /// `udp://HOST:PORT`: no delivery check.
    Udp(String),
    /// `unix:/dev/log`: a local datagram socket.
    Unix(PathBuf),
}

/// `audit.syslog`, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyslogTarget {
    /// Where.
    pub transport: Transport,
    /// The facility name (`authpriv` by default: security events).
    pub facility: String,
}

impl Transport {
    /// Parses `tcp://HOST:PORT`, `udp://HOST:PORT` or `unix:PATH`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let host_port = |rest: &str| -> Result<String, String> {
            match rest.rsplit_once(':') {
                Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                    Ok(rest.to_owned())
                }
                _ => Err(format!("`{text}` needs HOST:PORT after the scheme")),
            }
        };
        if let Some(rest) = text.strip_prefix("tcp://") {
            Ok(Self::Tcp(host_port(rest)?))
        } else if let Some(rest) = text.strip_prefix("udp://") {
            Ok(Self::Udp(host_port(rest)?))
        } else if let Some(rest) = text.strip_prefix("unix:") {
            if rest.is_empty() {
                return Err(format!("`{text}` needs a socket path, e.g. unix:/dev/log"));
            }
            Ok(Self::Unix(PathBuf::from(rest)))
        } else {
            Err(format!(
                "`{text}` is not a syslog address: give tcp://HOST:PORT (delivery is checked), \
                 udp://HOST:PORT or unix:/dev/log"
            ))
        }
    }
}

/// The facility of a name (`authpriv`, `local0`, ...).
pub fn facility(name: &str) -> Option<Facility> {
    name.parse::<Facility>().ok()
}

/// Sends `line` (the event's JSON line) as one RFC 5424 message.
pub fn send(
    target: &SyslogTarget,
    event: &AuditEvent,
    host: &str,
    line: &str,
) -> Result<(), AuditError> {
    let failed = |why: String| AuditError::Syslog {
        target: describe(&target.transport),
        why,
    };
    let facility = facility(&target.facility)
        .ok_or_else(|| failed(format!("unknown facility `{}`", target.facility)))?;
    let formatter = Formatter5424 {
        facility,
        hostname: Some(host.to_owned()),
        process: "kafka-backup".into(),
        pid: event.pid,
    };
    let severity = match (event.phase, event.outcome) {
        (_, Some(Outcome::Failure)) => Severity::LOG_ERR,
        (_, Some(Outcome::Partial)) => Severity::LOG_WARNING,
        _ => Severity::LOG_NOTICE,
    };
    let msgid = match event.phase {
        Some(Phase::End) => 2,
        _ => 1,
    };
    let mut data: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    data.insert(
        "origin".to_owned(),
        [
            ("software".to_owned(), "kafka-backup".to_owned()),
            ("swVersion".to_owned(), event.tool_version.clone()),
        ]
        .into_iter()
        .collect(),
    );
    let mut message = Vec::with_capacity(line.len() + 128);
    formatter
        .format(&mut message, severity, (msgid, data, line))
        .map_err(|e| failed(e.to_string()))?;
    let io = |e: std::io::Error| failed(e.to_string());
    match &target.transport {
        Transport::Tcp(address) => {
            let addr = address
                .to_socket_addrs()
                .map_err(io)?
                .next()
                .ok_or_else(|| failed("the name resolves to no address".into()))?;
            let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(io)?;
            stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
            // RFC 6587 octet counting: "LEN SP MSG".
            let mut framed = format!("{} ", message.len()).into_bytes();
            framed.extend_from_slice(&message);
            stream.write_all(&framed).map_err(io)?;
            stream.flush().map_err(io)?;
        }
        Transport::Udp(address) => {
            let socket = UdpSocket::bind(("0.0.0.0", 0)).map_err(io)?;
            socket.send_to(&message, address.as_str()).map_err(io)?;
        }
        Transport::Unix(path) => {
            #[cfg(unix)]
            {
                let socket = std::os::unix::net::UnixDatagram::unbound().map_err(io)?;
                socket.send_to(&message, path).map_err(io)?;
            }
            #[cfg(not(unix))]
            {
                let _ = path;
                return Err(failed("unix sockets need a Unix system".into()));
            }
        }
    }
    Ok(())
}

fn describe(t: &Transport) -> String {
    match t {
        Transport::Tcp(a) => format!("tcp://{a}"),
        Transport::Udp(a) => format!("udp://{a}"),
        Transport::Unix(p) => format!("unix:{}", p.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_facilities_parse() {
        assert_eq!(
            Transport::parse("tcp://syslog.example:6514"),
            Ok(Transport::Tcp("syslog.example:6514".into()))
        );
        assert_eq!(
            Transport::parse("unix:/dev/log"),
            Ok(Transport::Unix("/dev/log".into()))
        );
        assert!(Transport::parse("syslog.example:514").is_err());
        assert!(Transport::parse("tcp://nohost").is_err());
        assert!(Transport::parse("udp://:514").is_err());
        assert!(matches!(facility("authpriv"), Some(Facility::LOG_AUTHPRIV)));
        assert!(matches!(facility("local3"), Some(Facility::LOG_LOCAL3)));
        assert!(facility("nonsense").is_none());
    }
}
