//! `kafka-backup quarantine`: mark a backup as suspect, so that restores refuse it, or lift
//! the mark; and how the other commands show and honour it.

use std::fmt::Write as _;
use std::path::Path;

use backup_core::quarantine::{self, Action, QuarantineError, State};
use backup_core::storage::Storage;
use backup_format::signing::VerifyingKeys;
use serde_json::json;

use super::{open_store, print_json};
use crate::OutputFormat;
use crate::exit::{Exit, Failed};

/// The exit code and message of a quarantine failure.
pub(crate) fn failed(e: QuarantineError) -> Failed {
    let exit = match &e {
        QuarantineError::Storage(_) => Exit::Storage,
        _ => Exit::Config,
    };
    Failed::new(exit, e.to_string())
}

/// Writes a quarantine (or, with `release`, a release) marker for the configuration's backup.
pub async fn run(
    config_path: &Path,
    reason: &str,
    release: bool,
    format: OutputFormat,
) -> Result<Exit, Failed> {
    if reason.trim().is_empty() {
        return Err(Failed::new(
            Exit::Usage,
            "--reason is empty: say why, for whoever reads the marker and the audit trail"
                .to_owned(),
        ));
    }
    let (loaded, storage) = open_store(config_path, false).await?;
    let key = loaded
        .audit
        .signing_key
        .clone()
        .or_else(|| loaded.backup.as_ref().and_then(|b| b.signing_key.clone()));
    let action = if release {
        Action::Release
    } else {
        Action::Quarantine
    };
    let by = crate::audit::who();
    let marker = quarantine::write_marker(
        &storage,
        &loaded.backup_id,
        action,
        reason,
        &by,
        key.as_ref(),
    )
    .await
    .map_err(failed)?;
    crate::audit::detail(&format!(
        "{}: {reason} ({marker})",
        if release { "released" } else { "quarantined" }
    ));
    if let Some(k) = &key {
        crate::audit::key_ids([k.verifying_key().key_id()]);
    }
    match format {
        OutputFormat::Json => print_json(&json!({
            "backup_id": loaded.backup_id,
            "action": if release { "release" } else { "quarantine" },
            "marker": marker,
            "reason": reason,
            "signed_by": key.as_ref().map(|k| k.verifying_key().key_id()),
        }))?,
        OutputFormat::Text => {
            if release {
                println!(
                    "Released backup `{}`: restores accept it again (marker {marker}).",
                    loaded.backup_id
                );
            } else {
                println!(
                    "Quarantined backup `{}`: restores refuse it until `kafka-backup quarantine \
                     --release` (marker {marker}).",
                    loaded.backup_id
                );
            }
        }
    }
    Ok(Exit::Ok)
}

/// The quarantine state of `backup_id`, releases trusted when signed by `keys`.
pub(crate) async fn state(
    storage: &Storage,
    backup_id: &str,
    keys: &VerifyingKeys,
) -> Result<State, Failed> {
    quarantine::read_state(storage, backup_id, keys)
        .await
        .map_err(failed)
}

/// One line for a quarantined backup: since when, by whom, why.
pub(crate) fn describe(state: &State) -> Option<String> {
    state.quarantined.as_ref().map(|q| {
        format!(
            "QUARANTINED since {} by {}: {}",
            q.marker.at,
            q.marker.by,
            q.marker.reason.escape_default()
        )
    })
}

/// The state as text lines for `describe`.
pub(crate) fn render(state: &State) -> String {
    let mut out = String::new();
    match describe(state) {
        Some(line) => {
            let _ = writeln!(out, "Quarantine   {line}");
        }
        None if state.history.is_empty() => {}
        None => {
            let _ = writeln!(out, "Quarantine   released");
        }
    }
    for f in &state.history {
        let _ = writeln!(
            out,
            "  {:>4} {:<10} {} by {}{}: {}",
            f.seq,
            match f.marker.action {
                Action::Quarantine => "quarantine",
                Action::Release => "release",
            },
            f.marker.at,
            f.marker.by,
            match (&f.signed_by, f.counts) {
                (Some(k), _) => format!(", signed by {k}"),
                (None, true) => String::new(),
                (None, false) => ", NOT COUNTED (unsigned release)".to_owned(),
            },
            f.marker.reason.escape_default()
        );
    }
    out
}

/// `json!` of the state for `describe --format json`.
pub(crate) fn to_json(state: &State) -> serde_json::Value {
    json!({
        "quarantined": state.quarantined.is_some(),
        "current": state.quarantined,
        "history": state.history,
    })
}
