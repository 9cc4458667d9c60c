//! `kafka-backup check --permissions`: the least-privilege probe of the configuration's storage
//! identity (see `backup_core::permissions` for what it tries and what it can prove).

use std::fmt::Write as _;
use std::path::Path;

use backup_core::config::Mode;
use backup_core::keys::{
    DecryptionSettings, EncryptionSettings, KeyContext, KmsSettings, ProviderKind, WrappedKey,
};
use backup_core::permissions::{self, Found, Report, Role};

use super::{open_store, print_json, print_text, table};
use crate::OutputFormat;
use crate::exit::{Exit, Failed};

/// The role to probe, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RoleArg {
    /// Create and list; no read, no delete.
    Backup,
    /// Read and list; no create, no delete.
    Restore,
    /// Read and list; no create, no delete.
    Validate,
    /// Prune and quarantine: list, create, read and delete; no KMS.
    Admin,
}

/// Which identity to probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Only {
    /// The storage (and KMS) identity.
    Storage,
    /// The Kafka principal.
    Kafka,
}

/// Probes the storage identity of `config_path` for its role (by default the
/// configuration's mode); exits 8 when a needed right is missing or a forbidden one present.
pub async fn run(
    config_path: &Path,
    role: Option<RoleArg>,
    only: Option<Only>,
    format: OutputFormat,
) -> Result<Exit, Failed> {
    let (loaded, storage) = open_store(config_path, false).await?;
    let role = match role {
        Some(RoleArg::Backup) => Role::Backup,
        Some(RoleArg::Restore) => Role::Restore,
        Some(RoleArg::Validate) => Role::Validate,
        Some(RoleArg::Admin) => Role::Admin,
        None if loaded.mode == Mode::Backup => Role::Backup,
        None => Role::Restore,
    };
    let mut report = if only == Some(Only::Kafka) {
        permissions::Report {
            role,
            location: storage.location(""),
            credential_source: storage.credential_source().to_owned(),
            checks: Vec::new(),
            canary_left: None,
            ok: true,
        }
    } else {
        let kms = kms_settings(&loaded);
        // An identity that may not generate a data key to try Decrypt on (a reading role, or a
        // wrongly configured one) tries a run's real one, when it can read the manifests.
        let real = match &kms {
            Some(_) => wrapped_kms_key(&storage, &loaded).await,
            None => None,
        };
        permissions::probe(
            &storage,
            role,
            &loaded.backup_id,
            kms.as_ref()
                .map(|k| (k, real.as_ref().map(|(w, c)| (w, c)))),
        )
        .await
    };
    // The Kafka side, for the roles that talk to Kafka.
    if matches!(role, Role::Backup | Role::Restore) && only != Some(Only::Storage) {
        let topics = loaded.backup.as_ref().map(|b| &b.topics);
        let checks = match loaded.cluster.client_config() {
            Ok(config) => match kafka_client::KafkaClient::connect(config).await {
                Ok(client) => permissions::kafka::probe(&client, role, topics).await,
                Err(e) => vec![kafka_unreachable(role, e.to_string())],
            },
            Err(e) => vec![kafka_unreachable(role, e.to_string())],
        };
        report.checks.extend(checks);
    }
    report.ok = report.checks.iter().all(|c| c.ok);
    let over = report
        .checks
        .iter()
        .filter(|c| !c.ok && c.found == Found::Allowed)
        .count() as u64;
    let missing = report
        .checks
        .iter()
        .filter(|c| !c.ok && c.found != Found::Allowed)
        .count() as u64;
    crate::audit::counts(&[("over_privileged", over), ("missing_or_unknown", missing)]);
    match format {
        OutputFormat::Json => print_json(&report)?,
        OutputFormat::Text => print_text(&render(&report)),
    }
    Ok(if report.ok { Exit::Ok } else { Exit::Findings })
}

/// The check that stands for every Kafka check when the cluster cannot be reached.
fn kafka_unreachable(role: Role, why: String) -> permissions::Check {
    permissions::Check {
        action: "kafka connect",
        permission: "a connection to the cluster".into(),
        expect: permissions::Expect::Needed,
        found: Found::Unknown,
        ok: false,
        detail: format!(
            "not determined: the {} role's Kafka rights could not be probed: {why}",
            role.as_str()
        ),
    }
}

/// The wrapped data key of the backup's newest KMS-encrypted run, with its context.
async fn wrapped_kms_key(
    storage: &backup_core::storage::Storage,
    loaded: &backup_core::config::LoadedConfig,
) -> Option<(WrappedKey, KeyContext)> {
    let read = super::read_keys(loaded, &super::TrustArgs::default()).ok()?;
    let catalog = backup_core::catalog::Catalog::load(storage, &loaded.backup_id, &read.trust)
        .await
        .ok()?;
    catalog.manifests.iter().rev().find_map(|m| {
        let e = m.manifest.encryption.as_ref()?;
        (e.key.provider == ProviderKind::AwsKms).then(|| {
            (
                e.key.clone(),
                KeyContext {
                    backup_id: loaded.backup_id.clone(),
                    run_id: m.manifest.run_id.clone(),
                },
            )
        })
    })
}

/// The configuration's `aws-kms` settings, if it uses KMS.
fn kms_settings(loaded: &backup_core::config::LoadedConfig) -> Option<KmsSettings> {
    let from_backup = loaded
        .backup
        .as_ref()
        .and_then(|b| b.encryption.as_ref())
        .and_then(|e| match e {
            EncryptionSettings::AwsKms(s) => Some(s.clone()),
            _ => None,
        });
    from_backup.or_else(|| {
        loaded.restore.as_ref().and_then(|r| {
            r.decryption.iter().find_map(|d| match d {
                DecryptionSettings::AwsKms(s) => Some(s.clone()),
                _ => None,
            })
        })
    })
}

fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Storage      {}", r.location);
    let _ = writeln!(out, "Identity     {}", r.credential_source);
    let _ = writeln!(out, "Role         {}", r.role.as_str());
    let mut rows = vec![
        ["ACTION", "PERMISSION", "ROLE", "RESULT"]
            .map(str::to_owned)
            .to_vec(),
    ];
    for c in &r.checks {
        rows.push(vec![
            c.action.to_owned(),
            c.permission.clone(),
            match c.expect {
                permissions::Expect::Needed => "needed".to_owned(),
                permissions::Expect::Forbidden => "forbidden".to_owned(),
            },
            c.detail.clone(),
        ]);
    }
    out.push_str(&table("  ", &rows));
    if let Some(canary) = &r.canary_left {
        let _ = writeln!(
            out,
            "Canary       {canary} stays (this identity cannot delete it, as it should be); \
             an administrator may remove it"
        );
    }
    let _ = writeln!(
        out,
        "Result       {}",
        if r.ok {
            "least privilege: every needed right present, no forbidden one"
        } else {
            "FINDINGS: see the rows above"
        }
    );
    let _ = writeln!(
        out,
        "Note         a denial proves only that this request was refused; an allowed request \
         proves the right. Kafka ACLs are not probed yet."
    );
    out
}
