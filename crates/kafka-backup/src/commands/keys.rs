//! `kafka-backup keys generate`: new encryption and signing keys, written in the formats the
//! configuration reads.
//!
//! Private files are created new (an existing file is never overwritten: an old key may be
//! what restores an old backup) with mode 600 from the moment they exist; public files get
//! mode 644. The directory must exist.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

use backup_core::keys::{KeyType, generate_key};
use clap::ValueEnum;
use serde::Serialize;

use super::print_json;
use crate::OutputFormat;
use crate::exit::{Exit, Failed};

/// `--type` of `keys generate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyKind {
    /// An age X25519 identity (PATH, for restores) and its recipient (PATH.pub, for
    /// backup.encryption.recipients).
    Age,
    /// A 256-bit key for key_provider: local (PATH).
    Local,
    /// An Ed25519 signing key (PATH, PKCS#8 PEM, for backup.signing_key) and its verify key
    /// (PATH.pub, for restore.verify_key).
    Signing,
}

#[derive(Serialize)]
struct Report {
    #[serde(rename = "type")]
    kind: &'static str,
    private_file: String,
    public_file: Option<String>,
    /// The recipient, fingerprint or key id.
    id: String,
}

/// Generates a key of `kind` into `out` (and `out.pub`).
pub fn generate(kind: KeyKind, out: &Path, format: OutputFormat) -> Result<Exit, Failed> {
    let (key_type, name) = match kind {
        KeyKind::Age => (KeyType::Age, "age"),
        KeyKind::Local => (KeyType::Local, "local"),
        KeyKind::Signing => (KeyType::Signing, "signing"),
    };
    let public_path = match kind {
        KeyKind::Local => None,
        KeyKind::Age | KeyKind::Signing => Some(with_pub(out)),
    };
    check_directory(out)?;
    for path in std::iter::once(out).chain(public_path.as_deref()) {
        refuse_existing(path)?;
    }
    let created = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let key = generate_key(key_type, &created)
        .map_err(|e| Failed::new(Exit::Failure, format!("cannot generate the key: {e}")))?;
    write_new(out, key.private_file.as_bytes(), 0o600)?;
    if let (Some(path), Some(text)) = (&public_path, &key.public_file)
        && let Err(e) = write_new(path, text.as_bytes(), 0o644)
    {
        // Both files or neither: the private key alone would be a half-made key pair.
        let _ = std::fs::remove_file(out);
        return Err(e);
    }
    match format {
        OutputFormat::Json => print_json(&Report {
            kind: name,
            private_file: out.display().to_string(),
            public_file: public_path.as_ref().map(|p| p.display().to_string()),
            id: key.id.clone(),
        })?,
        OutputFormat::Text => {
            println!("{}", key.id);
            eprintln!("{}", explain(kind, out, public_path.as_deref()));
        }
    }
    Ok(Exit::Ok)
}

/// What was written and where each file goes, for people (on stderr: stdout is the id alone).
fn explain(kind: KeyKind, out: &Path, public: Option<&Path>) -> String {
    let out = out.display();
    let public = public.map(|p| p.display().to_string()).unwrap_or_default();
    match kind {
        KeyKind::Age => format!(
            "wrote the age identity {out} (mode 600) and its recipient {public}; the recipient \
             (printed above) goes into backup.encryption.recipients, the identity into \
             restore.encryption.identity_files: keep it off the backup host, and keep a copy \
             offline (`age -d -i {out}` decrypts a wrapped key without kafka-backup)"
        ),
        KeyKind::Local => format!(
            "wrote the local key {out} (mode 600), fingerprint printed above; use it as \
             backup.encryption.key_file and restore.encryption.key_files, and keep a copy: \
             without it no backup made with it can be restored"
        ),
        KeyKind::Signing => format!(
            "wrote the signing key {out} (mode 600) and its verify key {public}; the signing key \
             goes into backup.signing_key, the verify key (id printed above) into \
             restore.verify_key"
        ),
    }
}

fn with_pub(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".pub");
    PathBuf::from(name)
}

fn check_directory(out: &Path) -> Result<(), Failed> {
    if out.as_os_str().is_empty() || out.file_name().is_none() {
        return Err(Failed::new(
            Exit::Usage,
            format!(
                "--out {} is not a file name; give the path of the key file to create",
                out.display()
            ),
        ));
    }
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Failed::new(
            Exit::Usage,
            format!(
                "{} is not a directory; give --out inside a directory",
                dir.display()
            ),
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(Failed::new(
            Exit::Usage,
            format!(
                "the directory {} does not exist; create it first (mkdir -m 700 {}) and run the \
                 command again",
                dir.display(),
                dir.display()
            ),
        )),
        Err(e) => Err(Failed::new(
            Exit::Usage,
            format!("the directory {} cannot be accessed: {e}", dir.display()),
        )),
    }
}

fn refuse_existing(path: &Path) -> Result<(), Failed> {
    // symlink_metadata: a dangling link counts as existing, as it would for O_EXCL.
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(exists(path));
    }
    Ok(())
}

fn exists(path: &Path) -> Failed {
    Failed::new(
        Exit::Usage,
        format!(
            "{} already exists; keys generate never overwrites a key file (an old key may be \
             what restores old backups): choose another --out, or move the old file away first",
            path.display()
        ),
    )
}

/// Creates `path` (it must not exist) with `mode` from the start, and writes `bytes`.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Failed> {
    let failed = |e: std::io::Error| {
        Failed::new(
            Exit::Failure,
            format!("cannot write {}: {e}", path.display()),
        )
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    let file = options.open(path).map_err(|e| {
        if e.kind() == ErrorKind::AlreadyExists {
            exists(path)
        } else {
            failed(e)
        }
    })?;
    let result = fill(&file, bytes, mode);
    if let Err(e) = result {
        let _ = std::fs::remove_file(path);
        return Err(failed(e));
    }
    Ok(())
}

fn fill(mut file: &File, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        // The umask may have taken bits away at creation (never added any): set exactly.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    file.write_all(bytes)?;
    file.sync_all()
}
