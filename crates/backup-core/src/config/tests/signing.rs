//! `backup.signing_key` and `restore.verify_key`.

use std::path::Path;

use backup_format::signing::{SigningKey, VerifyingKeys};

use super::{assert_message, err, ok};

fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

fn backup(extra: &str) -> String {
    format!(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:9092\"]\nbackup:\n{extra}"
    )
}

fn restore(extra: &str) -> String {
    format!(
        "mode: restore\nbackup_id: b\ntarget:\n  bootstrap_servers: [\"k:9092\"]\nrestore:\n{extra}"
    )
}

/// Writes a new signing key as `name` (0600) and `name.pub`.
fn signing_key(dir: &Path, name: &str) -> SigningKey {
    let (key, pem) = SigningKey::generate().unwrap();
    write_mode(&dir.join(name), pem.as_bytes(), 0o600);
    write_mode(
        &dir.join(format!("{name}.pub")),
        key.verifying_key().to_pem().as_bytes(),
        0o644,
    );
    key
}

#[test]
fn the_signing_key_loads_and_gives_the_backup_its_verify_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = signing_key(dir.path(), "signing.key");
    let c = ok(
        &backup("  signing_key: ${KEYS}/signing.key\n"),
        &[("KEYS", dir.path().to_str().unwrap())],
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let plan = c.backup.as_ref().unwrap();
    assert_eq!(
        plan.signing_key.as_ref().unwrap().verifying_key(),
        key.verifying_key()
    );
    assert_eq!(
        c.verifying_keys(),
        VerifyingKeys::new(vec![key.verifying_key().clone()])
    );
    let pem = std::fs::read_to_string(dir.path().join("signing.key")).unwrap();
    let body = pem.lines().nth(1).unwrap();
    assert!(!format!("{c:?}").contains(body));
    // No signing key: nothing to verify with.
    let c = ok(&backup("  compression: zstd\n"), &[]);
    assert!(c.verifying_keys().is_empty());
}

#[test]
fn signing_key_mistakes_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    signing_key(dir.path(), "signing.key");
    let d = dir.path().display();
    let e = err(
        &backup(&format!("  signing_key: {d}/signing.key.pub\n")),
        &[],
    );
    assert_message(
        &e,
        &["backup.signing_key", "holds a public key", "not FILE.pub"],
    );
    write_mode(&dir.path().join("junk.key"), b"not a key", 0o600);
    let e = err(&backup(&format!("  signing_key: {d}/junk.key\n")), &[]);
    assert_message(
        &e,
        &[
            "junk.key",
            "not a signing key",
            "keys generate --type signing",
        ],
    );
    let e = err(&backup(&format!("  signing_key: {d}/missing.key\n")), &[]);
    assert_message(&e, &["backup.signing_key", "does not exist"]);
    let e = err(&restore(&format!("  signing_key: {d}/signing.key\n")), &[]);
    assert_message(&e, &["unknown key `restore.signing_key`"]);

    let pem = std::fs::read(dir.path().join("signing.key")).unwrap();
    write_mode(&dir.path().join("signing.key"), &pem, 0o604);
    let c = ok(&backup(&format!("  signing_key: {d}/signing.key\n")), &[]);
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("the signing key")
            && c.warnings[0].contains("readable by all other users (mode 604)")
            && c.warnings[0].contains("chmod 600"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn verify_keys_one_or_several() {
    let dir = tempfile::tempdir().unwrap();
    let old = signing_key(dir.path(), "old.key");
    let new = signing_key(dir.path(), "new.key");
    let d = dir.path().display();
    let c = ok(&restore(&format!("  verify_key: {d}/new.key.pub\n")), &[]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.verifying_keys(),
        VerifyingKeys::new(vec![new.verifying_key().clone()])
    );
    let c = ok(
        &restore(&format!(
            "  verify_key: [{d}/new.key.pub, {d}/old.key.pub, {d}/new.key.pub]\n"
        )),
        &[],
    );
    assert_eq!(
        c.verifying_keys(),
        VerifyingKeys::new(vec![
            new.verifying_key().clone(),
            old.verifying_key().clone()
        ])
    );
    let e = err(
        &restore(&format!("  verify_key: [{d}/new.key.pub, {d}/old.key]\n")),
        &[],
    );
    assert_message(
        &e,
        &[
            "restore.verify_key[1]",
            "holds a private key",
            "keep the signing key on the backup host",
        ],
    );
    let e = err(&restore("  verify_key: {a: 1}\n"), &[]);
    assert_message(&e, &["restore.verify_key", "Ed25519 public key file"]);
    let e = err(&restore("  verify_key: []\n"), &[]);
    assert_message(&e, &["restore.verify_key", "empty list"]);
    let e = err(&backup(&format!("  verify_key: {d}/new.key.pub\n")), &[]);
    assert_message(&e, &["unknown key `backup.verify_key`"]);
    // Signed backups: an unrestricted KMS entry is no longer worth a warning.
    let c = ok(
        &restore(&format!(
            "  verify_key: {d}/new.key.pub\n  encryption:\n    key_provider: aws-kms\n    \
             region: us-east-1\n"
        )),
        &[],
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // No verify key configured.
    let c = ok(&restore("  dry_run: true\n"), &[]);
    assert!(c.verifying_keys().is_empty());
    assert!(c.key_ring().is_empty());
}
