//! `backup.encryption` and `restore.encryption`: providers, their keys, key files and secrets.

use std::path::{Path, PathBuf};

use super::{assert_message, err, ok};
use crate::keys::{
    DecryptionSettings, EncryptionSettings, KeyAvailability, KeyType, ProviderKind, WrappedKey,
    generate_key,
};

fn backup(encryption: &str) -> String {
    format!(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:9092\"]\nbackup:\n  encryption:\n{encryption}"
    )
}

fn restore(restore: &str) -> String {
    format!(
        "mode: restore\nbackup_id: b\ntarget:\n  bootstrap_servers: [\"k:9092\"]\nrestore:\n{restore}"
    )
}

/// A directory of generated keys: `NAME` (private, 0600) and `NAME.pub`.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes a new key of `kind` as `name` (mode 0600) and returns its id.
    fn generate(&self, kind: KeyType, name: &str) -> String {
        let key = generate_key(kind, "2026-01-01T00:00:00Z").unwrap();
        write_mode(&self.path(name), key.private_file.as_bytes(), 0o600);
        if let Some(public) = &key.public_file {
            write_mode(&self.path(&format!("{name}.pub")), public.as_bytes(), 0o644);
        }
        key.id
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn dir(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
}

fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    std::fs::write(path, bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
}

#[test]
fn public_key_recipients_inline_and_from_a_file() {
    let keys = Keys::new();
    let ops = keys.generate(KeyType::Age, "ops.agekey");
    let dr = keys.generate(KeyType::Age, "dr.agekey");
    write_mode(
        &keys.path("recipients.txt"),
        format!("# disaster recovery (offline)\n{dr}\n\n{ops}\n").as_bytes(),
        0o644,
    );
    let c = ok(
        &backup(&format!(
            "    enabled: true\n    algorithm: AES-256\n    key_provider: public-key\n    \
             recipients: [\"${{OPS}}\"]\n    recipients_file: {}/recipients.txt\n",
            keys.dir()
        )),
        &[("OPS", &ops)],
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let Some(EncryptionSettings::PublicKey(r)) = &c.backup.as_ref().unwrap().encryption else {
        panic!("{c:?}")
    };
    assert_eq!(r.ids(), [ops, dr]);
    // The backup host holds no private key: its own key ring is empty.
    assert!(c.key_ring().is_empty());
}

#[test]
fn algorithm_and_provider_are_checked() {
    let e = err(
        &backup("    algorithm: AES-128-CBC\n    key_provider: local\n"),
        &[],
    );
    assert_message(&e, &["AES-128-CBC", "AES-256-GCM, AES-256"]);
    let e = err(&backup("    key_provider: vault\n"), &[]);
    assert_message(&e, &["vault", "public-key, aws-kms, local"]);
    let e = err(&backup("    enabled: true\n"), &[]);
    assert_message(&e, &["backup.encryption.key_provider", "public-key"]);
    let e = err(&backup("    key_provider: public-key\n"), &[]);
    assert_message(&e, &["backup.encryption.recipients", "recipients_file"]);
    let e = err(
        &backup("    key_provider: aws-kms\n    region: eu-west-1\n"),
        &[],
    );
    assert_message(&e, &["backup.encryption.kms_key_id", "alias/NAME"]);
    let e = err(&backup("    key_provider: local\n"), &[]);
    assert_message(
        &e,
        &["backup.encryption.key_file", "keys generate --type local"],
    );
    let e = err(&backup("    key_provider: local\n    passphrase: x\n"), &[]);
    assert_message(&e, &["unknown key `backup.encryption.passphrase`"]);
    let e = err(
        &restore("  encryption:\n    key_provider: local\n    key_files: {a: 1}\n"),
        &[],
    );
    assert_message(
        &e,
        &[
            "restore.encryption.key_files",
            "a file path, or a list of file paths",
        ],
    );
    assert!(!e.to_string().contains("host:port"), "{e}");
    let e = err(&restore("  encryption: 5\n"), &[]);
    assert_message(&e, &["restore.encryption"]);
}

#[test]
fn keys_of_another_provider_or_mode_are_errors() {
    let e = err(
        &backup(
            "    key_provider: aws-kms\n    kms_key_id: alias/k\n    recipients: [\"age1x\"]\n",
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "backup.encryption.recipients",
            "a setting of key_provider public-key, but key_provider is aws-kms",
            "kms_key_id, region, endpoint",
        ],
    );
    let e = err(
        &backup("    key_provider: public-key\n    identity_files: [/k/ops.agekey]\n"),
        &[],
    );
    assert_message(&e, &["identity_files", "private keys", "should never hold"]);
    let e = err(
        &backup("    key_provider: local\n    key_files: [/k/a.key]\n"),
        &[],
    );
    assert_message(&e, &["give key_file"]);
    let e = err(
        &restore("  encryption:\n    key_provider: public-key\n    recipients: [\"age1x\"]\n"),
        &[],
    );
    assert_message(
        &e,
        &["restore.encryption.recipients", "give identity_files"],
    );
    let e = err(
        &restore("  encryption:\n    enabled: true\n    key_provider: local\n"),
        &[],
    );
    assert_message(&e, &["restore.encryption.enabled", "backups only"]);
    // Even a disabled section must be consistent.
    let e = err(
        &backup("    enabled: false\n    key_provider: local\n    recipients: [\"age1x\"]\n"),
        &[],
    );
    assert_message(&e, &["backup.encryption.recipients"]);
}

#[test]
fn disabled_encryption_warns_and_reads_no_file() {
    let c = ok(
        &backup("    enabled: false\n    key_provider: local\n    key_file: /nonexistent/k\n"),
        &[],
    );
    assert!(c.backup.as_ref().unwrap().encryption.is_none());
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("stored unencrypted"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn at_most_64_recipients() {
    let recipients: Vec<String> = (0..65)
        .map(|_| format!("\"{}\"", generate_key(KeyType::Age, "now").unwrap().id))
        .collect();
    let e = err(
        &backup(&format!(
            "    key_provider: public-key\n    recipients: [{}]\n",
            recipients.join(", ")
        )),
        &[],
    );
    assert_message(&e, &["lists 65 recipients", "at most 64"]);
}

#[test]
fn recipients_are_checked_and_private_keys_never_quoted() {
    let keys = Keys::new();
    keys.generate(KeyType::Age, "ops.agekey");
    let secret_line = keys
        .read("ops.agekey")
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap()
        .to_owned();
    let e = err(
        &backup(&format!(
            "    key_provider: public-key\n    recipients: [\"{secret_line}\"]\n"
        )),
        &[],
    );
    assert_message(&e, &["recipients[0]", "private key", "age-keygen -y"]);
    assert!(!e.to_string().contains(&secret_line));
    let e = err(
        &backup("    key_provider: public-key\n    recipients: [\"ssh-ed25519 AAAAC3Nza\"]\n"),
        &[],
    );
    assert_message(
        &e,
        &[
            "not a recipient",
            "SSH and plugin recipients are not supported",
        ],
    );
    // A recipients file that holds the identity itself.
    let e = err(
        &backup(&format!(
            "    key_provider: public-key\n    recipients_file: {}/ops.agekey\n",
            keys.dir()
        )),
        &[],
    );
    assert_message(&e, &["recipients_file", "line 3", "private key"]);
    assert!(!e.to_string().contains(&secret_line));
}

#[test]
fn local_key_files_load_warn_and_fail_with_the_fix() {
    let keys = Keys::new();
    let id = keys.generate(KeyType::Local, "backup.key");
    let c = ok(
        &backup("    key_provider: local\n    key_file: ${KEYS}/backup.key\n"),
        &[("KEYS", keys.dir())],
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let Some(EncryptionSettings::Local(key)) = &c.backup.as_ref().unwrap().encryption else {
        panic!()
    };
    assert_eq!(key.fingerprint(), id);
    assert_eq!(c.key_ring().descriptions(), [format!("local key {id}")]);
    let secret = keys.read("backup.key").lines().last().unwrap().to_owned();
    assert!(!format!("{c:?}").contains(&secret));

    // Readable by others: a warning that says chmod 600.
    write_mode(
        &keys.path("backup.key"),
        keys.read("backup.key").as_bytes(),
        0o644,
    );
    let c = ok(
        &backup(&format!(
            "    key_provider: local\n    key_file: {}/backup.key\n",
            keys.dir()
        )),
        &[],
    );
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("backup.encryption.key_file"));
    assert!(c.warnings[0].contains("readable by its group and all other users (mode 644)"));
    assert!(c.warnings[0].contains("chmod 600"));

    // Missing, malformed, and far too large files.
    let e = err(
        &backup(&format!(
            "    key_provider: local\n    key_file: {}/nope.key\n",
            keys.dir()
        )),
        &[],
    );
    assert_message(
        &e,
        &["backup.encryption.key_file", "nope.key", "does not exist"],
    );
    write_mode(&keys.path("bad.key"), b"hunter2hunter2\n", 0o600);
    let e = err(
        &backup(&format!(
            "    key_provider: local\n    key_file: {}/bad.key\n",
            keys.dir()
        )),
        &[],
    );
    assert_message(
        &e,
        &[
            "bad.key",
            "not a local key file",
            "keys generate --type local",
        ],
    );
    assert!(!e.to_string().contains("hunter2hunter2"));
    write_mode(&keys.path("big.key"), &vec![b'#'; 70 * 1024], 0o600);
    let e = err(
        &backup(&format!(
            "    key_provider: local\n    key_file: {}/big.key\n",
            keys.dir()
        )),
        &[],
    );
    assert_message(&e, &["big.key", "larger than 64 KiB"]);
}

const KMS_SECRET: &str = "Kms-Secret-Access-Key-From-Env-4711";
const KMS_TOKEN: &str = "Kms-Session-Token-From-Env-0815";

#[test]
fn aws_kms_settings_and_their_secrets() {
    let c = ok(
        &backup(
            "    key_provider: aws-kms\n    kms_key_id: arn:aws:kms:eu-west-1:111122223333:key/k-1\n    \
             endpoint: http://127.0.0.1:4566/\n    allow_http: true\n    access_key_id: AKIAKMS\n    \
             secret_access_key: ${KMS_SECRET}\n    session_token: \"${KMS_TOKEN}\"\n",
        ),
        &[("KMS_SECRET", KMS_SECRET), ("KMS_TOKEN", KMS_TOKEN)],
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let Some(EncryptionSettings::AwsKms(kms)) = &c.backup.as_ref().unwrap().encryption else {
        panic!()
    };
    assert_eq!(kms.effective_region().as_deref(), Some("eu-west-1"));
    assert_eq!(kms.endpoint.as_deref(), Some("http://127.0.0.1:4566"));
    let creds = kms.credentials.as_ref().unwrap();
    assert_eq!(creds.secret_access_key.expose(), KMS_SECRET);
    assert_eq!(creds.session_token.as_ref().unwrap().expose(), KMS_TOKEN);
    for text in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{:?}", c.key_ring()),
    ] {
        assert!(
            !text.contains(KMS_SECRET) && !text.contains(KMS_TOKEN),
            "{text}"
        );
    }
    // The backup configuration's own ring decrypts with the same KMS settings.
    assert_eq!(
        c.key_ring().descriptions(),
        ["aws-kms key arn:aws:kms:eu-west-1:111122223333:key/k-1"]
    );

    // A literal secret next to an error elsewhere is never shown.
    let e = err(
        &backup(&format!(
            "    key_provider: aws-kms\n    kms_key_id: alias/k\n    access_key_id: AKIAKMS\n    \
             secret_access_key: {KMS_SECRET}\n    region: EU_WEST\n"
        )),
        &[],
    );
    assert_message(&e, &["backup.encryption.region", "eu-west-1"]);
    assert!(!e.to_string().contains(KMS_SECRET));
    let e = err(
        &backup(&format!(
            "    key_provider: aws-kms\n    kms_key_id: alias/k\n    secret_access_key: {KMS_SECRET}\n    \
             bogus: 1\n"
        )),
        &[],
    );
    assert!(!e.to_string().contains(KMS_SECRET), "{e}");

    let e = err(
        &backup(
            "    key_provider: aws-kms\n    kms_key_id: alias/k\n    endpoint: http://kms.example\n",
        ),
        &[],
    );
    assert_message(&e, &["endpoint", "http://", "allow_http: true"]);
    let e = err(
        &backup("    key_provider: aws-kms\n    kms_key_id: alias/k\n    access_key_id: AKIA\n"),
        &[],
    );
    assert_message(&e, &["access_key_id", "without secret_access_key"]);
    let c = ok(
        &backup(
            "    key_provider: aws-kms\n    kms_key_id: alias/k\n    endpoint: http://kms.example\n    \
             allow_http: true\n",
        ),
        &[],
    );
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("not on this machine"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn restore_key_ring_of_one_or_many_blocks() {
    let keys = Keys::new();
    let ops = keys.generate(KeyType::Age, "ops.agekey");
    let dr = keys.generate(KeyType::Age, "dr.agekey");
    // Several identities in one file, with comments.
    let both = format!(
        "{}\n# the DR key\n{}",
        keys.read("ops.agekey"),
        keys.read("dr.agekey")
    );
    write_mode(&keys.path("both.agekey"), both.as_bytes(), 0o600);
    let current = keys.generate(KeyType::Local, "current.key");
    let old = keys.generate(KeyType::Local, "old.key");
    let c = ok(
        &restore(&format!(
            "  encryption:\n  - key_provider: public-key\n    identity_files: {d}/both.agekey\n  \
             - key_provider: local\n    key_file: {d}/current.key\n    key_files: [{d}/old.key]\n  \
             - key_provider: aws-kms\n    region: us-east-1\n",
            d = keys.dir()
        )),
        &[],
    );
    // KMS without a key id and no verify key: KMS would decrypt under any key.
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("has no kms_key_id"),
        "{:?}",
        c.warnings
    );
    let r = c.restore.as_ref().unwrap();
    assert_eq!(r.decryption.len(), 3);
    let DecryptionSettings::PublicKey(ids) = &r.decryption[0] else {
        panic!()
    };
    assert_eq!(ids.recipients(), [ops.clone(), dr]);
    let DecryptionSettings::Local(locals) = &r.decryption[1] else {
        panic!()
    };
    let fingerprints: Vec<&str> = locals.iter().map(|k| k.fingerprint()).collect();
    assert_eq!(fingerprints, [current.as_str(), old.as_str()]);
    assert_eq!(r.decryption[2].provider(), ProviderKind::AwsKms);

    // No private key in Debug output.
    let text = format!("{c:?} {:?}", c.key_ring());
    for name in ["ops.agekey", "dr.agekey", "current.key", "old.key"] {
        let secret = keys.read(name).lines().last().unwrap().to_owned();
        assert!(!text.contains(&secret), "{name} leaked: {text}");
    }

    // What describe asks: which key would unwrap a wrapped key, without the network.
    let ring = c.key_ring();
    let wrapped = |provider, id: &str| WrappedKey {
        provider,
        key_ids: vec![id.to_owned()],
        blob: vec![1; 61],
    };
    assert_eq!(
        ring.availability(&wrapped(ProviderKind::Local, &old)),
        KeyAvailability::Available {
            key_id: old.clone()
        }
    );
    assert_eq!(
        ring.availability(&wrapped(ProviderKind::PublicKey, &ops)),
        KeyAvailability::Available { key_id: ops }
    );
    assert!(matches!(
        ring.availability(&wrapped(ProviderKind::Local, "0000000000000000")),
        KeyAvailability::Missing { configured } if configured == [current, old]
    ));
    assert!(matches!(
        ring.availability(&wrapped(
            ProviderKind::AwsKms,
            "arn:aws:kms:us-east-1:1:key/x"
        )),
        KeyAvailability::Possible { .. }
    ));

    // One block, not a list.
    let c = ok(
        &restore(&format!(
            "  encryption:\n    key_provider: public-key\n    identity_files: [{}/ops.agekey]\n",
            keys.dir()
        )),
        &[],
    );
    assert_eq!(c.restore.unwrap().decryption.len(), 1);
}

#[test]
fn restore_identity_files_are_checked() {
    let keys = Keys::new();
    keys.generate(KeyType::Age, "ops.agekey");
    let e = err(
        &restore("  encryption:\n    key_provider: public-key\n"),
        &[],
    );
    assert_message(
        &e,
        &["restore.encryption.identity_files", "age-keygen -o FILE"],
    );
    let e = err(
        &restore("  encryption:\n  - key_provider: local\n  - key_provider: aws-kms\n"),
        &[],
    );
    assert_message(&e, &["restore.encryption[0].key_files", "missing or empty"]);
    // A recipients file given as an identity file.
    let e = err(
        &restore(&format!(
            "  encryption:\n    key_provider: public-key\n    identity_files: [{d}/ops.agekey, {d}/ops.agekey.pub]\n",
            d = keys.dir()
        )),
        &[],
    );
    assert_message(
        &e,
        &[
            "identity_files[1]",
            "ops.agekey.pub",
            "recipient (public key), not an identity",
        ],
    );
    write_mode(
        &keys.path("ops.agekey"),
        keys.read("ops.agekey").as_bytes(),
        0o640,
    );
    let c = ok(
        &restore(&format!(
            "  encryption:\n    key_provider: public-key\n    identity_files: {}/ops.agekey\n",
            keys.dir()
        )),
        &[],
    );
    assert_eq!(c.warnings.len(), 1);
    assert!(
        c.warnings[0].contains("age identity file")
            && c.warnings[0].contains("readable by its group (mode 640)")
            && c.warnings[0].contains("chmod 600"),
        "{:?}",
        c.warnings
    );
}
