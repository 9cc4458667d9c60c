//! `kafka-backup report --evidence`: one document for reviewers and auditors, built from what
//! the tool can check itself (each backup validated, the posture findings, the audit trails
//! verified, the data-boundary map), signed as a DSSE envelope when a key is given, with a
//! Markdown rendering beside it; and `report --verify`, which checks such a document.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use backup_core::audit::chain::Verifier;
use backup_core::audit::{config_digest, file, now, store};
use backup_core::backup::ProgressMode;
use backup_core::config::{self, LoadedConfig, Mode};
use backup_core::posture;
use backup_core::validate::{ValidateOptions, validate};
use backup_format::signing::{Envelope, EnvelopeCheck, SigningKey, VerifyingKeys};
use serde_json::{Value, json};

use super::{read_keys, read_verify_keys};
use crate::exit::{Exit, Failed};

/// DSSE payload type of an evidence document.
const PAYLOAD_TYPE: &str = "application/vnd.kafka-backup.evidence+json";

fn cluster_of(l: &LoadedConfig) -> Value {
    let security = &l.cluster.security;
    json!({
        "role": l.mode.cluster_key(),
        "bootstrap_servers": l.cluster.bootstrap_servers.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "security_protocol": security.protocol.to_string(),
        "sasl_user": security.sasl.as_ref().map(|s| s.username.clone()),
        "client_certificate": security.tls.certificate_location.as_ref().map(|p| p.display().to_string()),
    })
}

fn keys_of(l: &LoadedConfig) -> Value {
    let encryption = l
        .backup
        .as_ref()
        .and_then(|b| b.encryption.as_ref())
        .map(|e| e.provider().to_string());
    json!({
        "encryption_provider": encryption,
        "signing_key": l.backup.as_ref().and_then(|b| b.signing_key.as_ref()).map(|k| k.verifying_key().key_id()),
        "verify_keys": l.verifying_keys().keys().iter().map(|k| k.key_id()).collect::<Vec<_>>(),
    })
}

/// Builds the evidence for `configs` (and the audit logs `audit_files`), writes
/// `out.json` (signed with `sign_with` when given) and `out.md`.
pub async fn evidence(
    configs: &[PathBuf],
    audit_files: &[PathBuf],
    sign_with: Option<&Path>,
    out: &Path,
) -> Result<Exit, Failed> {
    let key = match sign_with {
        None => None,
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                Failed::new(
                    Exit::Config,
                    format!("cannot read the signing key {}: {e}", path.display()),
                )
            })?;
            Some(
                SigningKey::from_pem(&pem)
                    .map_err(|e| Failed::new(Exit::Config, format!("{}: {e}", path.display())))?,
            )
        }
    };
    let mut loaded = Vec::new();
    for (i, path) in configs.iter().enumerate() {
        let l = if i == 0 {
            super::load_config(path, false)?
        } else {
            config::load(path)?
        };
        loaded.push((path.clone(), l));
    }
    let mut boundary = Vec::new();
    let mut backups = Vec::new();
    let mut trails = Vec::new();
    let mut drills = Drills::default();
    for (path, l) in &loaded {
        let storage_config = l.require_storage(&path.display().to_string())?;
        let storage =
            backup_core::storage::Storage::open_with(storage_config, &l.storage_options, &|name| {
                std::env::var(name).ok()
            })
            .map_err(|e| Failed::new(Exit::Storage, e.to_string()))?;
        boundary.push(json!({
            "config": path.display().to_string(),
            "mode": l.mode.to_string(),
            "config_sha256": config_digest(l),
            "cluster": cluster_of(l),
            "storage": { "location": storage.location(""), "credential_source": storage.credential_source() },
            "keys": keys_of(l),
        }));
        // Validation needs read access: done with the reading (restore) configurations.
        if l.mode == Mode::Restore {
            let read = read_keys(l, &super::TrustArgs::default())?;
            let options = ValidateOptions {
                progress: ProgressMode::Log,
                trust: read.trust,
                keys: read.data,
                ..ValidateOptions::default()
            };
            let result = match validate(&storage, &l.backup_id, options).await {
                Ok(r) => json!({
                    "backup_id": r.backup_id, "location": r.location, "ok": r.ok,
                    "errors": r.errors, "warnings": r.warnings, "runs": r.runs,
                    "topics": r.topics, "partitions": r.partitions, "segments": r.segments,
                    "records": r.records, "authentication": r.authentication.describe(),
                }),
                Err(e) => {
                    json!({ "backup_id": l.backup_id, "ok": false, "failure": e.to_string() })
                }
            };
            backups.push(result);
            let keys = l.verifying_keys();
            let verified = store::verify(&storage, &l.backup_id, &keys).await;
            // Only a trail that verified whole may speak for a drill.
            if let Ok((v, events)) = &verified
                && v.first_break.is_none()
            {
                for e in events {
                    if let Ok(line) = serde_json::to_string(&e.event) {
                        drills.see(&line);
                    }
                }
            }
            match verified {
                Ok((v, _)) if v.events > 0 || v.first_break.is_some() => trails.push(json!({
                    "trail": storage.location(&format!("audit/{}/", l.backup_id)),
                    "ok": v.first_break.is_none(), "verification": v,
                })),
                Ok(_) => {}
                Err(e) => trails.push(json!({
                    "trail": storage.location(&format!("audit/{}/", l.backup_id)),
                    "ok": false, "failure": e.to_string(),
                })),
            }
        }
    }
    let mut all_keys: Vec<_> = loaded
        .iter()
        .flat_map(|(_, l)| l.verifying_keys().keys().to_vec())
        .collect();
    all_keys.dedup();
    let trail_keys = VerifyingKeys::new(all_keys);
    for path in audit_files {
        let mut verifier = Verifier::new(&trail_keys);
        let read = file::read_lines(path, |n, line| {
            verifier.check(&format!("line {n}"), line);
            // Lines from the first break on cannot speak for a drill.
            if !verifier.broken() {
                drills.see(line);
            }
            !verifier.broken()
        });
        let v = verifier.finish();
        trails.push(match read {
            Ok(()) => json!({ "trail": path.display().to_string(), "ok": v.first_break.is_none(), "verification": v }),
            Err(e) => json!({ "trail": path.display().to_string(), "ok": false, "failure": e.to_string() }),
        });
    }
    let findings = posture::assess(&loaded);
    let ok = backups.iter().all(|b| b["ok"] == true) && trails.iter().all(|t| t["ok"] == true);
    let document = json!({
        "kind": "kafka-backup evidence",
        "generated_at": now(),
        "tool_version": env!("CARGO_PKG_VERSION"),
        "host": crate::audit::who(),
        "ok": ok,
        "data_boundary": boundary,
        "backups": backups,
        "audit_trails": trails,
        "posture": {
            "high": findings.iter().filter(|f| f.severity == posture::Severity::High).count(),
            "medium": findings.iter().filter(|f| f.severity == posture::Severity::Medium).count(),
            "low": findings.iter().filter(|f| f.severity == posture::Severity::Low).count(),
            "findings": findings,
        },
        "restore_drill": drills.newest(),
    });
    let payload = serde_json::to_vec_pretty(&document)
        .map_err(|e| Failed::new(Exit::Failure, format!("cannot encode the evidence: {e}")))?;
    let json_text = match &key {
        Some(k) => serde_json::to_string_pretty(&Envelope::seal(PAYLOAD_TYPE, &payload, k))
            .map_err(|e| Failed::new(Exit::Failure, format!("cannot encode the envelope: {e}")))?,
        None => String::from_utf8_lossy(&payload).into_owned(),
    };
    let json_path = out.with_extension("json");
    let md_path = out.with_extension("md");
    let write = |path: &Path, text: &str| {
        std::fs::write(path, text).map_err(|e| {
            Failed::new(
                Exit::Config,
                format!("cannot write {}: {e}", path.display()),
            )
        })
    };
    write(&json_path, &json_text)?;
    write(&md_path, &markdown(&document, key.as_ref()))?;
    crate::audit::detail(&format!(
        "evidence written to {} and {}",
        json_path.display(),
        md_path.display()
    ));
    println!(
        "Evidence     {} ({}) and {}",
        json_path.display(),
        match &key {
            Some(k) => format!("signed by {}", k.verifying_key().key_id()),
            None => "unsigned: pass --sign-with".to_owned(),
        },
        md_path.display()
    );
    println!(
        "Result       {}",
        if ok {
            "every backup validated and every audit trail intact"
        } else {
            "PROBLEMS: see the document"
        }
    );
    Ok(if ok { Exit::Ok } else { Exit::Integrity })
}

fn markdown(d: &Value, key: Option<&SigningKey>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# kafka-backup evidence\n");
    let _ = writeln!(
        out,
        "Generated {} by kafka-backup {} on {}. {}\n",
        d["generated_at"].as_str().unwrap_or(""),
        d["tool_version"].as_str().unwrap_or(""),
        d["host"].as_str().unwrap_or(""),
        match key {
            Some(k) => format!(
                "The JSON document is signed (DSSE, Ed25519) by key {}; check it with \
                 `kafka-backup report --verify FILE.json --verify-key KEY.pub`.",
                k.verifying_key().key_id()
            ),
            None => "The JSON document is not signed.".to_owned(),
        }
    );
    let _ = writeln!(
        out,
        "## Backups\n\n| backup | location | result | errors | warnings | runs | records | authentication |\n|---|---|---|---|---|---|---|---|"
    );
    for b in d["backups"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            b["backup_id"].as_str().unwrap_or(""),
            b["location"].as_str().unwrap_or(""),
            if b["ok"] == true {
                "valid"
            } else {
                "**FAILED**"
            },
            b["errors"],
            b["warnings"],
            b["runs"],
            b["records"],
            b["authentication"]
                .as_str()
                .unwrap_or(b["failure"].as_str().unwrap_or(""))
        );
    }
    let _ = writeln!(
        out,
        "\n## Audit trails\n\n| trail | result | events | first break |\n|---|---|---|---|"
    );
    for t in d["audit_trails"].as_array().into_iter().flatten() {
        let v = &t["verification"];
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            t["trail"].as_str().unwrap_or(""),
            if t["ok"] == true {
                "intact"
            } else {
                "**BROKEN**"
            },
            v["events"],
            v["first_break"]["reason"]
                .as_str()
                .or(t["failure"].as_str())
                .unwrap_or("")
        );
    }
    let _ = writeln!(
        out,
        "\n## Data boundary\n\n| config | mode | cluster | principal | storage | credential | keys |\n|---|---|---|---|---|---|---|"
    );
    for b in d["data_boundary"].as_array().into_iter().flatten() {
        let c = &b["cluster"];
        let _ = writeln!(
            out,
            "| {} | {} | {} ({}) | {} | {} | {} | {} |",
            b["config"].as_str().unwrap_or(""),
            b["mode"].as_str().unwrap_or(""),
            c["bootstrap_servers"],
            c["security_protocol"].as_str().unwrap_or(""),
            c["sasl_user"]
                .as_str()
                .or(c["client_certificate"].as_str())
                .unwrap_or("anonymous"),
            b["storage"]["location"].as_str().unwrap_or(""),
            b["storage"]["credential_source"].as_str().unwrap_or(""),
            b["keys"]
        );
    }
    let p = &d["posture"];
    let _ = writeln!(
        out,
        "\n## Posture\n\n{} high, {} medium, {} low findings.\n",
        p["high"], p["medium"], p["low"]
    );
    for f in p["findings"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "- **{}** {} {}: {}",
            f["severity"].as_str().unwrap_or(""),
            f["rule"].as_str().unwrap_or(""),
            f["title"].as_str().unwrap_or(""),
            f["evidence"].as_str().unwrap_or("")
        );
    }
    let drill = &d["restore_drill"];
    let _ = writeln!(
        out,
        "\n## Restore drill\n\n{}",
        if drill.is_null() {
            "No `kafka-backup drill` in the audit trails covered: recovery is not proven by a \
             drill in this evidence."
                .to_owned()
        } else {
            format!(
                "Newest drill: {} (backup {}, exit {}): {}",
                drill["time"].as_str().unwrap_or("?"),
                drill["backup_id"].as_str().unwrap_or("?"),
                drill["exit_code"],
                drill["detail"].as_str().unwrap_or("")
            )
        }
    );
    out
}

/// The newest `drill` end event seen in the audit trails.
#[derive(Default)]
struct Drills(Option<Value>);

impl Drills {
    fn see(&mut self, line: &str) {
        let Ok(event) = serde_json::from_str::<Value>(line) else {
            return;
        };
        if event["command"] != "drill" || event["phase"] != "end" {
            return;
        }
        let newer = self
            .0
            .as_ref()
            .is_none_or(|d| d["time"].as_str() < event["time"].as_str());
        if newer {
            self.0 = Some(json!({
                "time": event["time"], "backup_id": event["backup_id"],
                "outcome": event["outcome"], "exit_code": event["exit_code"],
                "detail": event["detail"], "counts": event["counts"],
            }));
        }
    }

    fn newest(&self) -> Value {
        self.0.clone().unwrap_or(Value::Null)
    }
}

/// Checks an evidence document's signature with `verify_keys`; exits 7 when it does not
/// verify.
pub fn verify(file: &Path, verify_keys: &[PathBuf]) -> Result<Exit, Failed> {
    let keys = VerifyingKeys::new(read_verify_keys(verify_keys)?);
    // An evidence document is a few hundred KiB; anything far larger is not one, and is not
    // read into memory.
    const MAX_DOCUMENT: u64 = 64 << 20;
    let mut text = Vec::new();
    std::fs::File::open(file)
        .and_then(|f| {
            std::io::Read::read_to_end(&mut std::io::Read::take(f, MAX_DOCUMENT + 1), &mut text)
        })
        .map_err(|e| Failed::new(Exit::Config, format!("cannot read {}: {e}", file.display())))?;
    if text.len() as u64 > MAX_DOCUMENT {
        return Err(Failed::new(
            Exit::Integrity,
            format!(
                "{} is larger than {MAX_DOCUMENT} bytes: not an evidence document kafka-backup \
                 wrote; it was not read further",
                file.display()
            ),
        ));
    }
    let refused = |why: &str| {
        Failed::new(
            Exit::Integrity,
            format!(
                "{} is not an authentic evidence document: {why}",
                file.display()
            ),
        )
    };
    let envelope: Envelope =
        serde_json::from_slice(&text).map_err(|_| refused("it is not a signed (DSSE) document"))?;
    match envelope.open(PAYLOAD_TYPE, &keys) {
        Some((_, EnvelopeCheck::Verified(id))) => {
            println!("Verified     signed by {id}");
            Ok(Exit::Ok)
        }
        Some((_, EnvelopeCheck::NotVerified(claimed))) => Err(refused(&format!(
            "its signature (claimed by {}) does not verify with the given keys: it was altered, \
             or signed with another key",
            claimed.join(", ")
        ))),
        None => Err(refused("it is not an evidence envelope")),
    }
}
