//! The `storage:` section: each backend's keys, the rules between them, and secrets.

use std::path::PathBuf;

use super::*;
use crate::storage::{AzureCredentials, S3Encryption, StorageConfig};

/// A backup config with `storage` (indented by the caller at two spaces).
fn with_storage(storage: &str) -> String {
    format!(
        "mode: backup\nbackup_id: prod-orders\nsource:\n  bootstrap_servers: [\"kafka-0:9093\"]\nstorage:\n{storage}"
    )
}

fn storage_ok(storage: &str, vars: &[(&str, &str)]) -> (StorageConfig, Vec<String>) {
    let loaded = ok(&with_storage(storage), vars);
    (loaded.storage.expect("storage is set"), loaded.warnings)
}

fn storage_err(storage: &str, vars: &[(&str, &str)]) -> ConfigError {
    err(&with_storage(storage), vars)
}

const S3_SECRET: &str = "S3-Secret-Key-From-Env-7788";
const S3_TOKEN: &str = "S3-Session-Token-From-Env-9911";
const AZURE_KEY: &str = "QXp1cmUtQWNjb3VudC1LZXktRnJvbS1FbnYtMTIzNDU2Nzg5MA==";
const SAS: &str =
    "sv=2022-11-02&ss=b&srt=co&sp=rwlc&se=2030-01-01T00:00:00Z&sig=Sas-Signature-Value-4455";

#[test]
fn s3_with_every_key() {
    let (storage, warnings) = storage_ok(
        "  backend: s3\n  bucket: kafka-backups\n  region: eu-west-1\n  prefix: /backups/prod/\n  \
         endpoint: https://minio.example:9000/\n  force_path_style: true\n  access_key: AKIAEXAMPLE\n  \
         secret_key: ${S3_SECRET}\n  session_token: \"${S3_TOKEN}\"\n  sse: aws:kms\n  \
         kms_key_id: alias/kafka-backup\n",
        &[("S3_SECRET", S3_SECRET), ("S3_TOKEN", S3_TOKEN)],
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let StorageConfig::S3(s3) = &storage else {
        panic!("{storage:?}")
    };
    assert_eq!(s3.bucket, "kafka-backups");
    assert_eq!(s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(s3.prefix, "backups/prod");
    assert_eq!(s3.endpoint.as_deref(), Some("https://minio.example:9000"));
    assert!(s3.force_path_style && !s3.allow_http);
    let creds = s3.credentials.as_ref().unwrap();
    assert_eq!(creds.access_key_id, "AKIAEXAMPLE");
    assert_eq!(creds.secret_access_key.expose(), S3_SECRET);
    assert_eq!(creds.session_token.as_ref().unwrap().expose(), S3_TOKEN);
    assert_eq!(
        s3.sse,
        Some(S3Encryption::Kms {
            key_id: Some("alias/kafka-backup".to_owned())
        })
    );
    assert_eq!(
        storage.to_string(),
        "s3://kafka-backups/backups/prod at https://minio.example:9000 in eu-west-1, SSE aws:kms \
         with key alias/kafka-backup, access key AKIAEXAMPLE"
    );
}

#[test]
fn s3_minimal_uses_the_credential_chain() {
    let (storage, warnings) = storage_ok("  backend: S3\n  bucket: b-1.x\n", &[]);
    assert!(warnings.is_empty());
    let StorageConfig::S3(s3) = storage else {
        panic!()
    };
    assert!(s3.credentials.is_none() && s3.sse.is_none() && s3.region.is_none());
    assert!(!s3.force_path_style && s3.prefix.is_empty());
    let (storage, _) = storage_ok("  backend: s3\n  bucket: bkt\n  sse: aes256\n", &[]);
    let StorageConfig::S3(s3) = storage else {
        panic!()
    };
    assert_eq!(s3.sse, Some(S3Encryption::Aes256));
    // aws:kms without a key: the AWS managed key.
    let (storage, _) = storage_ok("  backend: s3\n  bucket: bkt\n  sse: aws:kms\n", &[]);
    let StorageConfig::S3(s3) = storage else {
        panic!()
    };
    assert_eq!(s3.sse, Some(S3Encryption::Kms { key_id: None }));
}

#[test]
fn filesystem_relative_path_is_taken_from_the_working_directory() {
    let (storage, _) = storage_ok("  backend: filesystem\n  path: backups/kafka\n", &[]);
    let StorageConfig::Filesystem(fs) = storage else {
        panic!()
    };
    assert!(fs.path.is_absolute());
    assert_eq!(
        fs.path,
        std::env::current_dir().unwrap().join("backups/kafka")
    );
    let (storage, _) = storage_ok("  backend: filesystem\n  path: /var/backups\n", &[]);
    let StorageConfig::Filesystem(fs) = storage else {
        panic!()
    };
    assert_eq!(fs.path, PathBuf::from("/var/backups"));
    let e = storage_err("  backend: filesystem\n  path: \"\"\n", &[]);
    assert_message(&e, &["`storage.path` (line 7): is empty"]);
}

#[test]
fn azure_credentials() {
    let base = "  backend: azure\n  account_name: kbstore\n  container_name: kafka-backups\n";
    let (storage, _) = storage_ok(
        &format!("{base}  account_key: ${{AZURE_KEY}}\n  prefix: prod\n"),
        &[("AZURE_KEY", AZURE_KEY)],
    );
    let StorageConfig::Azure(az) = &storage else {
        panic!()
    };
    assert!(matches!(&az.credentials, AzureCredentials::AccountKey(k) if k.expose() == AZURE_KEY));
    assert_eq!(az.prefix, "prod");
    assert_eq!(
        storage.to_string(),
        "azure account kbstore container kafka-backups prefix prod, account key"
    );

    let (storage, _) = storage_ok(&format!("{base}  sas_token: \"?{SAS}\"\n"), &[]);
    let StorageConfig::Azure(az) = storage else {
        panic!()
    };
    assert!(
        matches!(&az.credentials, AzureCredentials::SasToken(t) if t.expose() == format!("?{SAS}"))
    );

    let (storage, _) = storage_ok(base, &[]);
    let StorageConfig::Azure(az) = storage else {
        panic!()
    };
    assert!(matches!(az.credentials, AzureCredentials::Environment));

    let e = storage_err(
        &format!("{base}  account_key: {AZURE_KEY}\n  sas_token: \"{SAS}\"\n"),
        &[],
    );
    assert_message(
        &e,
        &["`storage.sas_token` (line 10): is set together with account_key; give one of them"],
    );
    let e = storage_err(&format!("{base}  account_key: not-base64!\n"), &[]);
    assert_message(
        &e,
        &["`storage.account_key` (line 9): is not base64 (the value is not shown)"],
    );
    assert!(!e.to_string().contains("not-base64!"));
    let e = storage_err(
        &format!("{base}  sas_token: \"https://kbstore.blob.core.windows.net/c?{SAS}\"\n"),
        &[],
    );
    assert_message(
        &e,
        &["`storage.sas_token` (line 9): is a URL (the value is not shown)"],
    );
    assert!(!e.to_string().contains("Sas-Signature-Value"));
    let e = storage_err(&format!("{base}  sas_token: sv=2022-11-02&sp=r\n"), &[]);
    assert_message(&e, &["has no sig= parameter"]);

    let e = storage_err(
        "  backend: azure\n  account_name: KB_Store\n  container_name: c1c\n",
        &[],
    );
    assert_message(
        &e,
        &["`storage.account_name` (line 7): `KB_Store` is not a storage account name"],
    );
    let e = storage_err(
        "  backend: azure\n  account_name: kbstore\n  container_name: a--b\n",
        &[],
    );
    assert_message(
        &e,
        &["`storage.container_name` (line 8): `a--b` is not a container name"],
    );
}

#[test]
fn gcs_service_account_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sa.json");
    std::fs::write(&file, "{}").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let (storage, warnings) = storage_ok(
        &format!(
            "  backend: gcs\n  bucket: kb_backups\n  service_account_path: {}\n",
            file.display()
        ),
        &[],
    );
    let StorageConfig::Gcs(gcs) = &storage else {
        panic!()
    };
    assert_eq!(gcs.service_account_path.as_deref(), Some(&*file));
    #[cfg(unix)]
    {
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("readable by other users (mode 644)"));
    }
    let _ = warnings;
    let e = storage_err(
        &format!(
            "  backend: gcs\n  bucket: kbb\n  service_account_path: {}/missing.json\n",
            dir.path().display()
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "`storage.service_account_path` (line 8): names",
            "which does not exist",
        ],
    );
    let (storage, _) = storage_ok("  backend: gcs\n  bucket: kbb\n", &[]);
    assert_eq!(
        storage.to_string(),
        "gs://kbb, application default credentials"
    );
}

#[test]
fn storage_is_optional_until_a_command_needs_it() {
    let loaded = ok(
        "mode: restore\nbackup_id: b1\ntarget:\n  bootstrap_servers: kafka:9092\n",
        &[],
    );
    assert!(loaded.storage.is_none());
    let e = loaded.require_storage("kafka-backup.yaml").unwrap_err();
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "kafka-backup.yaml: missing required key `storage`; add it: expected a `storage:` section for the restore",
        ],
    );
    let loaded = ok(&with_storage("  backend: s3\n  bucket: bkt\n"), &[]);
    assert_eq!(loaded.require_storage("x").unwrap().backend_name(), "s3");
}

#[test]
fn unknown_keys_are_matched_against_the_backends_keys() {
    let e = storage_err("  backend: s3\n  bucket_nmae: x\n", &[]);
    assert!(matches!(e, ConfigError::UnknownKey { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "unknown key `storage.bucket_nmae` (line 7); did you mean `bucket`?",
            "(the keys allowed in `storage` are: backend, bucket, region, prefix, endpoint, \
             force_path_style, allow_http, access_key, secret_key, session_token, sse, kms_key_id, \
             object_lock)",
        ],
    );
    // The backend may come after the key.
    let e = storage_err("  containr_name: x\n  backend: azure\n", &[]);
    assert_message(
        &e,
        &[
            "did you mean `container_name`?",
            "are: backend, account_name, container_name, prefix, account_key, sas_token, endpoint, allow_http)",
        ],
    );
    // Without a readable backend, every storage key is offered.
    let e = storage_err("  pth: x\n  backend: nfs\n", &[]);
    assert_message(&e, &["unknown key `storage.pth`", "service_account_path"]);
}

#[test]
fn a_key_of_another_backend_names_that_backend() {
    let e = storage_err(
        "  backend: s3\n  bucket: bkt\n  container_name: backups\n",
        &[],
    );
    assert!(matches!(e, ConfigError::Invalid { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "`storage.container_name` (line 8): `container_name` is a setting of the azure backend, \
             but backend is s3, so it would be ignored; remove it, or set backend: azure",
            "(the keys of the s3 backend are: backend, bucket,",
        ],
    );
    let e = storage_err("  backend: filesystem\n  path: /b\n  bucket: bkt\n", &[]);
    assert_message(
        &e,
        &["`bucket` is a setting of the s3 and gcs backends, but backend is filesystem"],
    );
    let e = storage_err("  backend: gcs\n  bucket: bkt\n  region: eu-west-1\n", &[]);
    assert_message(
        &e,
        &["`region` is a setting of the s3 backend, but backend is gcs"],
    );
}

#[test]
fn sse_on_a_backend_without_it() {
    let e = storage_err(
        "  backend: azure\n  account_name: kbstore\n  container_name: kbc\n  sse: aws:kms\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "`storage.sse` (line 9): `sse` is a setting of the s3 backend, but backend is azure, so it \
             would be ignored; Azure Blob Storage always encrypts at rest",
        ],
    );
    let e = storage_err("  backend: gcs\n  bucket: bkt\n  sse: AES256\n", &[]);
    assert_message(&e, &["Google Cloud Storage always encrypts at rest"]);
    let e = storage_err("  backend: filesystem\n  path: /x\n  kms_key_id: k\n", &[]);
    assert_message(
        &e,
        &[
            "`kms_key_id` is a setting of the s3 backend",
            "does not encrypt",
        ],
    );
    let e = storage_err("  backend: s3\n  bucket: bkt\n  sse: aws:kms2\n", &[]);
    assert_message(
        &e,
        &[
            "unknown value `aws:kms2` for `storage.sse` (line 8); did you mean `aws:kms`? use one of: AES256, aws:kms",
        ],
    );
    let e = storage_err(
        "  backend: s3\n  bucket: bkt\n  sse: AES256\n  kms_key_id: k1\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "`storage.kms_key_id` (line 9): is set but sse is AES256, so the key would not be used; set sse: aws:kms",
        ],
    );
    let e = storage_err("  backend: s3\n  bucket: bkt\n  kms_key_id: k1\n", &[]);
    assert_message(&e, &["is set but sse is not set"]);
}

#[test]
fn unknown_backend_lists_the_four() {
    let e = storage_err("  backend: azur\n", &[]);
    assert!(matches!(e, ConfigError::UnknownValue { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "unknown value `azur` for `storage.backend` (line 6); did you mean `azure`? use one of: filesystem, s3, azure, gcs",
        ],
    );
    let e = storage_err("  backend: hdfs\n", &[]);
    assert_message(&e, &["use one of: filesystem, s3, azure, gcs"]);
    let e = storage_err("  bucket: b\n", &[]);
    assert!(matches!(e, ConfigError::MissingKey { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "missing required key `storage.backend`",
            "one of filesystem, s3, azure, gcs",
        ],
    );
    let e = storage_err("  backend: s3\n  region: eu-west-1\n", &[]);
    assert_message(
        &e,
        &[
            "missing required key `storage.bucket` (in the mapping at line 6); add it: expected a bucket name (backend s3 needs it)",
        ],
    );
}

#[test]
fn http_endpoints() {
    let s3 = "  backend: s3\n  bucket: bkt\n  force_path_style: true\n";
    // Loopback over HTTP with allow_http: the test-server case, no warning.
    for host in ["127.0.0.1:9000", "localhost:9000", "[::1]:9000"] {
        let (_, warnings) = storage_ok(
            &format!("{s3}  endpoint: http://{host}\n  allow_http: true\n"),
            &[],
        );
        assert!(warnings.is_empty(), "{host}: {warnings:?}");
    }
    let (_, warnings) = storage_ok(
        &format!("{s3}  endpoint: http://minio.internal:9000\n  allow_http: \"${{HTTP}}\"\n"),
        &[("HTTP", "true")],
    );
    assert_eq!(warnings.len(), 1);
    assert!(
        warnings[0].contains(
            "storage.allow_http is true and the endpoint http://minio.internal:9000 is not on this \
             machine: request signatures, tokens and every backed-up record cross the network in \
             clear text"
        ),
        "{warnings:?}"
    );
    let e = storage_err(
        &format!("{s3}  endpoint: http://minio.internal:9000\n"),
        &[],
    );
    assert_message(
        &e,
        &[
            "`storage.endpoint` (line 9): uses http://",
            "set allow_http: true (only for a local test server such as MinIO or moto)",
        ],
    );
    let (_, warnings) = storage_ok(
        &format!("{s3}  endpoint: https://minio.internal\n  allow_http: true\n"),
        &[],
    );
    assert!(
        warnings[0].contains("uses https://, so the setting has no effect"),
        "{warnings:?}"
    );
    let (_, warnings) = storage_ok("  backend: gcs\n  bucket: bkt\n  allow_http: true\n", &[]);
    assert!(warnings[0].contains("no endpoint is set"), "{warnings:?}");
    let (_, warnings) = storage_ok(
        "  backend: azure\n  account_name: devstoreaccount1\n  container_name: kbc\n  \
         endpoint: http://10.1.2.3:10000/devstoreaccount1\n  allow_http: true\n",
        &[],
    );
    assert!(
        warnings[0].contains("is not on this machine"),
        "{warnings:?}"
    );

    let e = storage_err(&format!("{s3}  endpoint: minio:9000\n"), &[]);
    assert_message(
        &e,
        &["`storage.endpoint` (line 9): uses the scheme `minio`"],
    );
    let e = storage_err(&format!("{s3}  endpoint: \"not a url\"\n"), &[]);
    assert_message(&e, &["is not a URL"]);
    let e = storage_err(&format!("{s3}  allow_http: maybe\n"), &[]);
    assert!(matches!(e, ConfigError::WrongType { .. }), "{e:?}");
    assert_message(
        &e,
        &[
            "wrong type for `storage.allow_http`",
            "expected true or false",
        ],
    );
}

#[test]
fn endpoint_credentials_and_queries_are_refused_without_being_quoted() {
    const PASSWORD: &str = "Url-Embedded-Password-5150";
    let e = storage_err(
        &format!(
            "  backend: s3\n  bucket: bkt\n  force_path_style: true\n  endpoint: https://user:{PASSWORD}@minio:9000\n"
        ),
        &[],
    );
    assert_message(&e, &["contains a user name or password"]);
    assert!(!e.to_string().contains(PASSWORD) && !format!("{e:?}").contains(PASSWORD));
    let e = storage_err(
        &format!(
            "  backend: azure\n  account_name: kbstore\n  container_name: kbc\n  endpoint: https://kbstore.blob.core.windows.net/?{SAS}\n"
        ),
        &[],
    );
    assert_message(
        &e,
        &[
            "has a query string or fragment",
            "a SAS token goes in storage.sas_token",
        ],
    );
    assert!(!e.to_string().contains("Sas-Signature-Value"));
}

#[test]
fn virtual_hosted_style_needs_a_host_name() {
    let e = storage_err(
        "  backend: s3\n  bucket: bkt\n  endpoint: http://127.0.0.1:9000\n  allow_http: true\n",
        &[],
    );
    assert_message(
        &e,
        &[
            "`storage.force_path_style` (line 8): is not true, so requests would go to BUCKET.127.0.0.1",
            "set force_path_style: true",
        ],
    );
    let e = storage_err(
        "  backend: s3\n  bucket: bkt\n  endpoint: https://localhost:9000\n  force_path_style: false\n",
        &[],
    );
    assert_message(&e, &["`storage.force_path_style` (line 9)"]);
    storage_ok(
        "  backend: s3\n  bucket: bkt\n  endpoint: https://s3.example.com\n",
        &[],
    );
}

#[test]
fn s3_credential_pairs() {
    let e = storage_err("  backend: s3\n  bucket: bkt\n  access_key: AKIA1\n", &[]);
    assert_message(
        &e,
        &["`storage.access_key` (line 8): is set without secret_key"],
    );
    let e = storage_err(
        "  backend: s3\n  bucket: bkt\n  secret_key: ${S}\n",
        &[("S", S3_SECRET)],
    );
    assert_message(
        &e,
        &["`storage.secret_key` (line 8): is set without access_key"],
    );
    let e = storage_err(
        "  backend: s3\n  bucket: bkt\n  session_token: ${T}\n",
        &[("T", S3_TOKEN)],
    );
    assert_message(
        &e,
        &["`storage.session_token` (line 8): is set without access_key and secret_key"],
    );
    let e = storage_err(
        "  backend: s3\n  bucket: bkt\n  access_key: AKIA1\n  secret_key: ${S}\n",
        &[("S", "")],
    );
    assert_message(
        &e,
        &["`storage.secret_key` (line 9): is empty; check that its ${VARIABLE} is exported"],
    );
    let e = storage_err(
        "  backend: s3\n  bucket: bkt\n  access_key: AKIA1\n  secret_key: ${S3_SECRET}\n",
        &[],
    );
    assert!(matches!(e, ConfigError::UnsetVariable { .. }), "{e:?}");
    assert_message(
        &e,
        &["environment variable S3_SECRET is not set (referenced by storage.secret_key at line 9)"],
    );
}

#[test]
fn names_and_prefixes_are_checked() {
    let e = storage_err("  backend: s3\n  bucket: s3://bkt/path\n", &[]);
    assert_message(
        &e,
        &[
            "`storage.bucket` (line 7): contains `:`",
            "without s3:// or gs://",
        ],
    );
    let e = storage_err("  backend: gcs\n  bucket: ab\n", &[]);
    assert_message(&e, &["is 2 characters long"]);
    let e = storage_err("  backend: s3\n  bucket: bkt\n  prefix: a/../b\n", &[]);
    assert_message(
        &e,
        &["`storage.prefix` (line 8): is not a usable prefix: it has a `.` or `..` segment"],
    );
    let e = storage_err("  backend: s3\n  bucket: bkt\n  prefix: a b\n", &[]);
    assert_message(&e, &["is not a usable prefix"]);
    let e = storage_err("  backend: s3\n  bucket: bkt\n  region: \"eu west\"\n", &[]);
    assert_message(&e, &["`storage.region` (line 8): is not a region name"]);
    let (storage, _) = storage_ok("  backend: s3\n  bucket: bkt\n  prefix: /\n", &[]);
    assert_eq!(storage.prefix(), "");
}

#[test]
fn no_storage_secret_reaches_debug_display_warnings_or_errors() {
    let vars = [
        ("S3_SECRET", S3_SECRET),
        ("S3_TOKEN", S3_TOKEN),
        ("AZURE_KEY", AZURE_KEY),
        ("SAS", SAS),
    ];
    let secrets = [S3_SECRET, S3_TOKEN, AZURE_KEY, "Sas-Signature-Value-4455"];
    let check = |text: &str| {
        for secret in secrets {
            assert!(
                !text.contains(secret),
                "secret {secret:?} leaked in: {text}"
            );
        }
    };
    let loaded_texts = |text: &str| {
        let loaded = ok(&with_storage(text), &vars);
        let storage = loaded.storage.as_ref().unwrap();
        vec![
            format!("{loaded:?}"),
            format!("{loaded:#?}"),
            format!("{loaded}"),
            format!("{storage}"),
            loaded.warnings.join(" "),
        ]
    };
    let s3 = "  backend: s3\n  bucket: bkt\n  access_key: AKIA1\n  secret_key: ${S3_SECRET}\n  \
              session_token: ${S3_TOKEN}\n  endpoint: http://minio:9000\n  allow_http: true\n  \
              force_path_style: true\n";
    let s3_literal = format!(
        "  backend: s3\n  bucket: bkt\n  access_key: AKIA1\n  secret_key: {S3_SECRET}\n  \
         session_token: {S3_TOKEN}\n"
    );
    let azure_key = "  backend: azure\n  account_name: kbstore\n  container_name: kbc\n  \
                     account_key: ${AZURE_KEY}\n";
    let azure_sas = format!(
        "  backend: azure\n  account_name: kbstore\n  container_name: kbc\n  sas_token: \"{SAS}\"\n"
    );
    for text in [s3, &s3_literal, azure_key, &azure_sas] {
        for out in loaded_texts(text) {
            check(&out);
        }
    }
    // Errors in files that hold the secrets, before and after them.
    let cases = [
        format!("{s3}  bucket_nmae: x\n"),
        format!("  bucket_nmae: x\n{s3}"),
        format!("{s3_literal}  container_name: kbc\n"),
        format!("{azure_key}  sas_token: \"{SAS}\"\n"),
        format!("{azure_sas}  sse: aws:kms\n"),
        format!("  backend: s3\n  bucket: bkt\n  access_key: AKIA1\n  secret_key: [{S3_SECRET}]\n"),
        format!(
            "  backend: azure\n  account_name: kbstore\n  container_name: kbc\n  account_key: {S3_SECRET}!\n"
        ),
        // A secret pasted into a keyword value is masked by the last-pass scrubber.
        format!("{s3_literal}  sse: {S3_SECRET}\n"),
        format!("{s3_literal}  region: \"{S3_SECRET} x\"\n"),
        format!("{s3_literal}  endpoint: https://u:{S3_SECRET}@h\n"),
    ];
    for case in cases {
        let e = storage_err(&case, &vars);
        check(&e.to_string());
        check(&format!("{e:?}"));
    }
}

#[test]
fn storage_timeouts_and_retries_are_read_and_bounded() {
    let loaded = ok(
        &with_storage(
            "  backend: s3\n  bucket: bkt\n  connect_timeout_ms: 2000\n  request_timeout_ms: 30000\n  \
             max_retries: 8\n  retry_timeout_ms: 90000\n",
        ),
        &[],
    );
    let o = &loaded.storage_options;
    assert_eq!(o.connect_timeout, std::time::Duration::from_secs(2));
    assert_eq!(o.request_timeout, std::time::Duration::from_secs(30));
    assert_eq!(o.max_retries, 8);
    assert_eq!(o.retry_timeout, std::time::Duration::from_secs(90));
    // Without them: the defaults.
    let loaded = ok(&with_storage("  backend: s3\n  bucket: bkt\n"), &[]);
    assert_eq!(
        loaded.storage_options.request_timeout,
        crate::storage::StorageOptions::default().request_timeout
    );
    // Out of range: an error naming the key, never a silent clamp.
    for (key, value) in [
        ("request_timeout_ms", "10"),
        ("retry_timeout_ms", "600000"),
        ("max_retries", "1000"),
    ] {
        let e = storage_err(
            &format!("  backend: s3\n  bucket: bkt\n  {key}: {value}\n"),
            &[],
        );
        assert!(e.to_string().contains(&format!("storage.{key}")), "{e}");
    }
}
