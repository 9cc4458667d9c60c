//! The security posture of configurations (`kafka-backup check --security`): what in them, or
//! in the files they name, weakens the protection of the data, each as a [`Finding`] with a
//! severity, the evidence and the fix. [`assess`] reads the configurations and local files
//! only; it contacts neither Kafka nor storage. [`bucket::assess_bucket`] adds what an S3
//! bucket's own settings say, asked of the service (`check --security --storage`).

pub mod bucket;

use std::path::{Path, PathBuf};
use std::time::Duration;

use kafka_client::config::SecurityProtocol;
use serde::Serialize;

use kafka_client::sasl::TokenSource;

use crate::config::{LoadedConfig, Mode, SaslCredentials, SaslMechanismName};
use crate::keys::EncryptionSettings;
use crate::storage::StorageConfig;

/// How much a finding weakens the protection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    /// Defence in depth is missing.
    Low,
    /// A layer of protection is missing or weakened.
    Medium,
    /// Data or credentials are exposed to someone on the network or the host.
    High,
}

impl Severity {
    /// `LOW`, `MEDIUM` or `HIGH`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "LOW",
            Self::Medium => "MEDIUM",
            Self::High => "HIGH",
        }
    }

    /// Parses `low`, `medium` or `high` in any case.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_uppercase().as_str() {
            "LOW" => Some(Self::Low),
            "MEDIUM" => Some(Self::Medium),
            "HIGH" => Some(Self::High),
            _ => None,
        }
    }
}

/// One weakness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// A stable rule id (`KB-TLS-001`, ...), for suppressions and code-scanning tools.
    pub rule: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// One line: what is wrong.
    pub title: String,
    /// What was found, precisely enough to locate it.
    pub evidence: String,
    /// What to do about it.
    pub fix: String,
    /// The configuration file it concerns.
    pub config: String,
    /// The line of that file, where known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// The rules, with a one-line description each (for SARIF's rule list).
pub const RULES: &[(&str, &str)] = &[
    ("KB-NET-001", "Kafka traffic is not encrypted"),
    (
        "KB-NET-002",
        "A SASL PLAIN password crosses the network in clear text",
    ),
    (
        "KB-NET-003",
        "An OAuth bearer token crosses the network in clear text",
    ),
    (
        "KB-NET-004",
        "The OAuth client secret is sent to an http token endpoint",
    ),
    ("KB-TLS-001", "Broker host names are not verified"),
    (
        "KB-TLS-002",
        "A certificate has expired or expires within 30 days",
    ),
    (
        "KB-SEC-001",
        "A secret is written in the configuration file",
    ),
    (
        "KB-FILE-001",
        "A private key file is readable by other users",
    ),
    (
        "KB-FILE-002",
        "A configuration file holding secrets is readable by other users",
    ),
    ("KB-FILE-003", "The filesystem store is open to other users"),
    ("KB-ENC-001", "Backups are not encrypted on the client"),
    ("KB-ENC-002", "The backup host can decrypt its own backups"),
    (
        "KB-SIG-001",
        "Backups are not signed, or restores do not require signatures",
    ),
    ("KB-STO-001", "Objects are not protected by S3 Object Lock"),
    ("KB-STO-002", "Storage is reached over plain HTTP"),
    ("KB-STO-010", "The bucket has no default encryption"),
    ("KB-STO-011", "The bucket policy makes the bucket public"),
    ("KB-STO-012", "The bucket ACL grants access to everyone"),
    ("KB-STO-013", "The bucket does not block public access"),
    (
        "KB-STO-014",
        "The bucket's own protection could not be checked",
    ),
    (
        "KB-IAM-001",
        "One identity is configured for both backup and restore",
    ),
    ("KB-AUD-001", "No audit trail is configured"),
];

/// Findings for each configuration, and across them (an identity used for both roles),
/// worst first.
pub fn assess(configs: &[(PathBuf, LoadedConfig)]) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (path, loaded) in configs {
        let mut at = Assessment {
            path,
            loaded,
            findings: &mut findings,
        };
        at.transport();
        at.certificates();
        at.secrets_and_files();
        at.encryption_and_signing();
        at.storage();
        at.audit();
    }
    cross_role(configs, &mut findings);
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.rule.cmp(b.rule)));
    findings
}

struct Assessment<'a> {
    path: &'a Path,
    loaded: &'a LoadedConfig,
    findings: &'a mut Vec<Finding>,
}

impl Assessment<'_> {
    fn add(
        &mut self,
        rule: &'static str,
        severity: Severity,
        title: String,
        evidence: String,
        fix: String,
    ) {
        self.add_at(rule, severity, title, evidence, fix, None);
    }

    fn add_at(
        &mut self,
        rule: &'static str,
        severity: Severity,
        title: String,
        evidence: String,
        fix: String,
        line: Option<u32>,
    ) {
        self.findings.push(Finding {
            rule,
            severity,
            title,
            evidence,
            fix,
            config: self.path.display().to_string(),
            line,
        });
    }

    fn cluster_key(&self) -> &'static str {
        self.loaded.mode.cluster_key()
    }

    fn transport(&mut self) {
        let security = &self.loaded.cluster.security;
        let key = format!("{}.security", self.cluster_key());
        match security.protocol {
            SecurityProtocol::Plaintext => self.add(
                "KB-NET-001",
                Severity::High,
                "Kafka traffic is neither encrypted nor authenticated".into(),
                format!("{key}.security_protocol is PLAINTEXT (or not set)"),
                "use SASL_SSL (or SSL with a client certificate): every record backed up or \
                 restored crosses the network readable and alterable by anyone on the path"
                    .into(),
            ),
            SecurityProtocol::SaslPlaintext => self.add(
                "KB-NET-001",
                Severity::High,
                "Kafka traffic is not encrypted".into(),
                format!("{key}.security_protocol is SASL_PLAINTEXT"),
                "use SASL_SSL: records cross the network in clear text, and the authenticated \
                 connection can be taken over by anyone on the path"
                    .into(),
            ),
            _ => {}
        }
        if let Some(sasl) = &security.sasl
            && sasl.mechanism == SaslMechanismName::Plain
            && !security.protocol.uses_tls()
        {
            self.add(
                "KB-NET-002",
                Severity::High,
                "The SASL PLAIN password is sent in clear text".into(),
                format!(
                    "{key}.sasl_mechanism is PLAIN over {} (user `{}`)",
                    security.protocol, sasl.username
                ),
                "use SASL_SSL, or SCRAM-SHA-512, and rotate the password: anyone on the path \
                 has been able to read it"
                    .into(),
            );
        }
        if let Some(sasl) = &security.sasl
            && let SaslCredentials::OAuth(oauth) = &sasl.credentials
        {
            if !security.protocol.uses_tls() {
                self.add(
                    "KB-NET-003",
                    Severity::High,
                    "The OAuth bearer token is sent in clear text".into(),
                    format!(
                        "{key}.sasl_mechanism is OAUTHBEARER over {}",
                        security.protocol
                    ),
                    "use SASL_SSL: anyone on the path can read the token and use it until it \
                     expires"
                        .into(),
                );
            }
            if let TokenSource::ClientCredentials(c) = &oauth.source
                && url::Url::parse(c.token_endpoint_url.trim()).is_ok_and(|u| u.scheme() == "http")
            {
                self.add(
                    "KB-NET-004",
                    Severity::High,
                    "The OAuth client secret is sent to an http token endpoint".into(),
                    format!(
                        "{key}.sasl_oauthbearer_token_endpoint_url is {} \
                         (sasl_oauthbearer_allow_http is true)",
                        c.token_endpoint_url
                    ),
                    "use the identity provider's https endpoint and remove \
                     sasl_oauthbearer_allow_http; rotate the client secret, which anyone on the \
                     path has been able to read"
                        .into(),
                );
            }
        }
        if security.protocol.uses_tls() && !security.tls.verify_hostname {
            let system = security.tls.ca_location.is_none();
            self.add(
                "KB-TLS-001",
                if system {
                    Severity::High
                } else {
                    Severity::Medium
                },
                "Broker certificates are not checked against the broker's name".into(),
                format!(
                    "{key}.ssl_endpoint_identification_algorithm is none{}",
                    if system {
                        ", with the system trust store: any publicly trusted certificate, \
                         for any name, is accepted"
                    } else {
                        ": any certificate from the configured CA is accepted for any broker"
                    }
                ),
                "remove ssl_endpoint_identification_algorithm (hostname verification is on by \
                 default) and put the broker's name in its certificate's subjectAltName"
                    .into(),
            );
        }
    }

    fn certificates(&mut self) {
        let tls = &self.loaded.cluster.security.tls;
        if !self.loaded.cluster.security.protocol.uses_tls() {
            return;
        }
        let key = format!("{}.security", self.cluster_key());
        let files = [
            (
                "ssl_certificate_location",
                tls.certificate_location.as_ref(),
            ),
            ("ssl_ca_location", tls.ca_location.as_ref()),
        ];
        for (name, path) in files {
            let Some(path) = path else { continue };
            let Ok(certs) = kafka_client::tls::read_certificates("ssl_ca_location", path) else {
                continue;
            };
            for cert in certs {
                let expired = cert.is_expired();
                if expired || cert.expires_within(Duration::from_secs(30 * 86_400)) {
                    self.add(
                        "KB-TLS-002",
                        if expired {
                            Severity::High
                        } else {
                            Severity::Medium
                        },
                        if expired {
                            "A certificate has expired".into()
                        } else {
                            "A certificate expires within 30 days".into()
                        },
                        format!("{key}.{name} {}: {cert}", path.display()),
                        "renew it and replace the file before it expires; connections fail \
                         from that moment"
                            .into(),
                    );
                }
            }
        }
    }

    fn secrets_and_files(&mut self) {
        let literal = &self.loaded.literal_secret_lines;
        if !literal.is_empty() {
            let lines: Vec<String> = literal.iter().map(u32::to_string).collect();
            self.add_at(
                "KB-SEC-001",
                Severity::Medium,
                "Secrets are written in the configuration file".into(),
                format!(
                    "{} written literally, not as ${{VAR}}: line {}",
                    if literal.len() == 1 {
                        "a secret is"
                    } else {
                        "secrets are"
                    },
                    lines.join(", ")
                ),
                "replace each with ${VAR} and supply the variable from a secret store \
                 (Kubernetes Secret, Vault); the file then holds no secret and can be \
                 reviewed and versioned"
                    .into(),
                literal.first().copied(),
            );
            if let Some(mode) = open_mode(self.path) {
                self.add(
                    "KB-FILE-002",
                    Severity::High,
                    "A configuration file with secrets is readable by other users".into(),
                    format!(
                        "{} has mode {mode:03o} and holds secrets",
                        self.path.display()
                    ),
                    format!(
                        "chmod 600 {}, and move the secrets to ${{VAR}}",
                        self.path.display()
                    ),
                );
            }
        }
        let mut private: Vec<(String, PathBuf)> = self.loaded.private_files.clone();
        if let Some(sasl) = &self.loaded.cluster.security.sasl
            && let SaslCredentials::Kerberos(k) = &sasl.credentials
        {
            private.push((
                format!("{}.security.sasl_keytab_path", self.cluster_key()),
                k.keytab_path.clone(),
            ));
        }
        if let Some(key) = &self.loaded.cluster.security.tls.key_location {
            private.push((
                format!("{}.security.ssl_key_location", self.cluster_key()),
                key.clone(),
            ));
        }
        for (key, path) in private {
            if let Some(mode) = open_mode(&path) {
                self.add(
                    "KB-FILE-001",
                    Severity::High,
                    "A private key file is readable by other users".into(),
                    format!("{key}: {} has mode {mode:03o}", path.display()),
                    format!("chmod 600 {}", path.display()),
                );
            }
        }
        if let Some(StorageConfig::Filesystem(fs)) = &self.loaded.storage
            && let Some(mode) = open_mode(&fs.path)
        {
            self.add(
                "KB-FILE-003",
                Severity::Medium,
                "The filesystem store is open to other users".into(),
                format!("storage.path {} has mode {mode:03o}", fs.path.display()),
                format!(
                    "chmod 700 {}: whoever can enter it can read the backup (its content too, \
                     unless client-side encryption is on)",
                    fs.path.display()
                ),
            );
        }
    }

    fn encryption_and_signing(&mut self) {
        match self.loaded.mode {
            Mode::Backup => {
                let Some(plan) = &self.loaded.backup else {
                    return;
                };
                match &plan.encryption {
                    None => self.add(
                        "KB-ENC-001",
                        Severity::Medium,
                        "Backups are stored unencrypted".into(),
                        "backup.encryption is absent or disabled".into(),
                        "set backup.encryption with key_provider: public-key (age recipients) or \
                         aws-kms, so that whoever reads the storage cannot read the records"
                            .into(),
                    ),
                    Some(EncryptionSettings::Local(_)) => self.add(
                        "KB-ENC-002",
                        Severity::Medium,
                        "The backup host holds a key that decrypts its backups".into(),
                        "backup.encryption.key_provider is local: the key that wraps each run's \
                         data key also unwraps it"
                            .into(),
                        "use key_provider: public-key (the backup host holds only recipients) or \
                         aws-kms with a backup role limited to kms:GenerateDataKey"
                            .into(),
                    ),
                    Some(_) => {}
                }
                if plan.signing_key.is_none() {
                    self.add(
                        "KB-SIG-001",
                        Severity::Medium,
                        "Backups are not signed".into(),
                        "backup.signing_key is not set".into(),
                        "create a key with `kafka-backup keys generate --type signing` and set \
                         backup.signing_key, so that restores can refuse objects an intruder \
                         wrote or replaced"
                            .into(),
                    );
                }
            }
            Mode::Restore => {
                let Some(restore) = &self.loaded.restore else {
                    return;
                };
                if restore.verify_keys.is_empty() {
                    self.add(
                        "KB-SIG-001",
                        Severity::Medium,
                        "Restores do not check signatures".into(),
                        "restore.verify_key is not set".into(),
                        "set restore.verify_key to the backup signing key's public half: \
                         without it anyone who can write to the storage can have a restore \
                         produce their records"
                            .into(),
                    );
                }
            }
        }
    }

    fn storage(&mut self) {
        let Some(storage) = &self.loaded.storage else {
            return;
        };
        if let StorageConfig::S3(s3) = storage {
            if self.loaded.mode == Mode::Backup && s3.object_lock.is_none() {
                self.add(
                    "KB-STO-001",
                    Severity::Low,
                    "Backup objects carry no S3 Object Lock retention".into(),
                    format!("storage.object_lock is not set (bucket {})", s3.bucket),
                    "write to a bucket with Object Lock enabled and set storage.object_lock, so \
                     that a stolen admin credential or ransomware cannot delete or overwrite \
                     the backup before its retention ends"
                        .into(),
                );
            }
            if s3.allow_http
                && s3
                    .endpoint
                    .as_deref()
                    .is_some_and(|e| e.starts_with("http://"))
            {
                self.add(
                    "KB-STO-002",
                    Severity::Medium,
                    "Storage is reached over plain HTTP".into(),
                    format!(
                        "storage.endpoint is {} with allow_http",
                        s3.endpoint.as_deref().unwrap_or_default()
                    ),
                    "use an https:// endpoint: request signatures and, unless encrypted on the \
                     client, every record cross the network in clear text"
                        .into(),
                );
            }
        }
    }

    fn audit(&mut self) {
        if self.loaded.audit.file.is_none() && !self.loaded.audit.stdout {
            self.add(
                "KB-AUD-001",
                Severity::Low,
                "No audit trail is configured in the file".into(),
                "audit.file and audit.stdout are not set".into(),
                "set audit.file (or pass --audit-file from the job that runs kafka-backup), and \
                 ship the log where this host cannot rewrite it"
                    .into(),
            );
        }
    }
}

/// The mode bits open to group or others, when there are any.
fn open_mode(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
        (mode & 0o077 != 0).then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// Who a configuration authenticates as, to Kafka and to storage.
fn identities(loaded: &LoadedConfig) -> Vec<String> {
    let mut ids = Vec::new();
    if let Some(sasl) = &loaded.cluster.security.sasl {
        ids.push(format!("the SASL user `{}`", sasl.username));
    }
    if let Some(cert) = &loaded.cluster.security.tls.certificate_location {
        ids.push(format!("the client certificate {}", cert.display()));
    }
    if let Some(StorageConfig::S3(s3)) = &loaded.storage
        && let Some(c) = &s3.credentials
    {
        ids.push(format!("the S3 access key `{}`", c.access_key_id));
    }
    ids
}

fn cross_role(configs: &[(PathBuf, LoadedConfig)], findings: &mut Vec<Finding>) {
    let backups = configs.iter().filter(|(_, l)| l.mode == Mode::Backup);
    for (bpath, backup) in backups {
        let theirs = identities(backup);
        for (rpath, restore) in configs.iter().filter(|(_, l)| l.mode == Mode::Restore) {
            for id in identities(restore)
                .into_iter()
                .filter(|i| theirs.contains(i))
            {
                findings.push(Finding {
                    rule: "KB-IAM-001",
                    severity: Severity::High,
                    title: "One identity is configured for both backup and restore".into(),
                    evidence: format!(
                        "{id} is used by the backup configuration {} and the restore \
                         configuration {}",
                        bpath.display(),
                        rpath.display()
                    ),
                    fix: "give each role its own identity with only its rights (backup: Kafka \
                          read, storage put + list; restore: storage get + list, Kafka write), \
                          so that a compromised backup host cannot read or restore backups"
                        .into(),
                    config: rpath.display().to_string(),
                    line: None,
                });
            }
        }
    }
}
