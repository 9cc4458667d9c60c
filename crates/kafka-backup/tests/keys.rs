//! `kafka-backup keys generate`: file modes, refusal to overwrite, and keys that the
//! configuration loaders, `age-keygen` and `openssl` all read the same way.
//!
//! Needs the `age` CLI from `scripts/test-env.sh start` (its env file names it) and openssl.

mod common;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use backup_core::config;
use backup_format::signing::{SigningKey, VerifyingKey};
use common::{EXIT_OK, Run, run_binary};

const EXIT_USAGE: i32 = 2;

fn generate(kind: &str, out: &Path, extra: &[&str]) -> Run {
    let fixed = ["keys", "generate", "--type", kind, "--out"];
    let mut args: Vec<&OsStr> = fixed.iter().map(OsStr::new).collect();
    args.push(out.as_os_str());
    args.extend(extra.iter().map(OsStr::new));
    run_binary(&args, &[])
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn tool(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn load(yaml: &str) -> config::LoadedConfig {
    config::parse(yaml, "test.yaml", &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

fn backup_yaml(backup: &str) -> String {
    format!(
        "mode: backup\nbackup_id: b\nsource:\n  bootstrap_servers: [\"k:9092\"]\nbackup:\n{backup}"
    )
}

fn restore_yaml(restore: &str) -> String {
    format!(
        "mode: restore\nbackup_id: b\ntarget:\n  bootstrap_servers: [\"k:9092\"]\nrestore:\n{restore}"
    )
}

#[test]
fn age_identities_are_age_keygen_files_and_load_as_configured() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ops.agekey");
    let run = generate("age", &out, &[]);
    run.assert_code(EXIT_OK);
    let recipient = run.stdout.trim().to_owned();
    assert!(recipient.starts_with("age1"), "{}", run.all());
    run.assert_contains("restore.encryption.identity_files");
    let public = dir.path().join("ops.agekey.pub");
    assert_eq!((mode(&out), mode(&public)), (0o600, 0o644));
    assert_eq!(
        std::fs::read_to_string(&public).unwrap(),
        format!("{recipient}\n")
    );
    let identity = std::fs::read_to_string(&out).unwrap();
    assert!(identity.starts_with("# created: "), "{identity}");
    assert!(identity.contains(&format!("\n# public key: {recipient}\n")));

    // age-keygen reads it as its own.
    let keygen = common::get("/age/keygen");
    assert_eq!(
        tool(&keygen, &["-y", out.to_str().unwrap()]).trim(),
        recipient
    );

    // Both files load through the configuration.
    let c = load(&backup_yaml(&format!(
        "  encryption:\n    key_provider: public-key\n    recipients_file: {}\n",
        public.display()
    )));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = load(&restore_yaml(&format!(
        "  encryption:\n    key_provider: public-key\n    identity_files: [{}]\n",
        out.display()
    )));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let backup_core::keys::DecryptionSettings::PublicKey(ids) = &c.restore.unwrap().decryption[0]
    else {
        panic!()
    };
    assert_eq!(ids.recipients(), [recipient]);
}

#[test]
fn local_keys_print_their_fingerprint_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("backup.key");
    let run = generate("local", &out, &[]);
    run.assert_code(EXIT_OK);
    let fingerprint = run.stdout.trim().to_owned();
    assert_eq!(fingerprint.len(), 16, "{}", run.all());
    assert_eq!(mode(&out), 0o600);
    assert!(!dir.path().join("backup.key.pub").exists());
    let c = load(&backup_yaml(&format!(
        "  encryption:\n    key_provider: local\n    key_file: {}\n",
        out.display()
    )));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert_eq!(
        c.key_ring().descriptions(),
        [format!("local key {fingerprint}")]
    );
}

#[test]
fn signing_keys_match_openssl_and_load() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("signing.key");
    let run = generate("signing", &out, &["--format", "json"]);
    run.assert_code(EXIT_OK);
    let report = run.json();
    let public = dir.path().join("signing.key.pub");
    assert_eq!(report["type"], "signing");
    assert_eq!(report["private_file"], out.to_str().unwrap());
    assert_eq!(report["public_file"], public.to_str().unwrap());
    assert_eq!((mode(&out), mode(&public)), (0o600, 0o644));

    // openssl derives the same public key from our private key.
    let derived = tool(
        "openssl",
        &["pkey", "-in", out.to_str().unwrap(), "-pubout"],
    );
    assert_eq!(derived, std::fs::read_to_string(&public).unwrap());
    let key = SigningKey::from_pem(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(report["id"], key.verifying_key().key_id());

    let c = load(&backup_yaml(&format!("  signing_key: {}\n", out.display())));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let r = load(&restore_yaml(&format!(
        "  verify_key: {}\n",
        public.display()
    )));
    assert_eq!(c.verifying_keys(), r.verifying_keys());
}

#[test]
fn openssl_ed25519_keys_load_as_signing_and_verify_keys() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("openssl.key");
    let public = dir.path().join("openssl.pub");
    tool(
        "openssl",
        &[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            key.to_str().unwrap(),
        ],
    );
    tool(
        "openssl",
        &[
            "pkey",
            "-in",
            key.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ],
    );
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let c = load(&backup_yaml(&format!("  signing_key: {}\n", key.display())));
    let signing = c.backup.as_ref().unwrap().signing_key.as_ref().unwrap();
    let verify = VerifyingKey::from_pem(&std::fs::read(&public).unwrap()).unwrap();
    assert_eq!(signing.verifying_key(), &verify);
    let r = load(&restore_yaml(&format!(
        "  verify_key: [{}]\n",
        public.display()
    )));
    assert_eq!(r.verifying_keys(), c.verifying_keys());
}

#[test]
fn existing_files_are_never_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("signing.key");
    generate("signing", &out, &[]).assert_code(EXIT_OK);
    let before = std::fs::read(&out).unwrap();
    let run = generate("signing", &out, &[]);
    run.assert_code(EXIT_USAGE);
    run.assert_contains(&format!("{} already exists", out.display()));
    run.assert_contains("never overwrites");
    assert_eq!(std::fs::read(&out).unwrap(), before);

    // A public file in the way: nothing is created.
    let out = dir.path().join("ops.agekey");
    std::fs::write(dir.path().join("ops.agekey.pub"), "age1old\n").unwrap();
    let run = generate("age", &out, &[]);
    run.assert_code(EXIT_USAGE);
    run.assert_contains("ops.agekey.pub already exists");
    assert!(!out.exists());

    // A dangling symbolic link is in the way too.
    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
    generate("local", &link, &[]).assert_code(EXIT_USAGE);
    assert!(!dir.path().join("elsewhere").exists());
}

#[test]
fn the_directory_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("missing").join("backup.key");
    let run = generate("local", &out, &[]);
    run.assert_code(EXIT_USAGE);
    run.assert_contains("does not exist; create it first (mkdir -m 700");
    let run = run_binary(
        &[
            OsStr::new("keys"),
            OsStr::new("generate"),
            OsStr::new("--type"),
            OsStr::new("rsa"),
            OsStr::new("--out"),
            dir.path().join("k").as_os_str(),
        ],
        &[],
    );
    run.assert_code(EXIT_USAGE);
    run.assert_contains("age, local, signing");
}

#[test]
fn modes_hold_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    for (umask, name) in [("000", "open"), ("077", "closed")] {
        let out = dir.path().join(format!("{name}.agekey"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask}; exec \"$0\" keys generate --type age --out \"$1\" >/dev/null 2>&1"
            ))
            .arg(common::binary())
            .arg(&out)
            .status()
            .unwrap();
        assert!(status.success());
        let public = dir.path().join(format!("{name}.agekey.pub"));
        assert_eq!((mode(&out), mode(&public)), (0o600, 0o644), "umask {umask}");
    }
}
