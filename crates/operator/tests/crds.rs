//! The CRD manifests under deploy/crds are exactly what the types generate.

use std::path::PathBuf;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kafka_backup_operator::crd::{REGENERATE_COMMAND, crd_yaml, crds};

fn crd_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/crds")
}

#[test]
fn committed_crds_match_the_types() {
    let update = std::env::var_os("KB_UPDATE_CRDS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (file, crd) in crds() {
        let yaml = crd_yaml(&crd).expect("a CRD serialises to YAML");
        let path = crd_dir().join(file);
        if update {
            std::fs::create_dir_all(crd_dir()).expect("create deploy/crds");
            std::fs::write(&path, &yaml).expect("write the CRD file");
            continue;
        }
        match std::fs::read_to_string(&path) {
            Ok(committed) if committed == yaml => {}
            Ok(_) => stale.push(format!("{} differs from the types", path.display())),
            Err(e) => stale.push(format!("{} cannot be read: {e}", path.display())),
        }
    }
    assert!(
        stale.is_empty(),
        "stale CRD manifests:\n  {}\nregenerate them with:\n  {REGENERATE_COMMAND}",
        stale.join("\n  ")
    );
}

/// The YAML the files hold reads back as the same CRD, so the serialiser loses nothing (a
/// dropped or retyped field would change what the API server validates).
#[test]
fn crd_yaml_reads_back_as_the_same_crd() {
    for (file, crd) in crds() {
        let yaml = crd_yaml(&crd).expect("a CRD serialises to YAML");
        let back: CustomResourceDefinition =
            serde_saphyr::from_str(&yaml).unwrap_or_else(|e| panic!("{file} does not parse: {e}"));
        assert_eq!(back, crd, "{file} does not round-trip");
    }
}

#[test]
fn crds_have_the_agreed_names_scope_and_columns() {
    let all = crds();
    let expected = [
        ("kafkabackups.kafka.oso.sh", "KafkaBackup", "kb"),
        ("kafkarestores.kafka.oso.sh", "KafkaRestore", "kr"),
    ];
    for ((_, crd), (name, kind, short)) in all.iter().zip(expected) {
        assert_eq!(crd.metadata.name.as_deref(), Some(name));
        assert_eq!(crd.spec.group, "kafka.oso.sh");
        assert_eq!(crd.spec.scope, "Namespaced");
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some(&[short.to_string()][..])
        );
        let [version] = &crd.spec.versions[..] else {
            panic!("{kind}: one version expected");
        };
        assert_eq!(version.name, "v1alpha1");
        assert!(version.served && version.storage);
        assert!(
            version
                .subresources
                .as_ref()
                .and_then(|s| s.status.as_ref())
                .is_some(),
            "{kind}: status subresource"
        );
        let columns: Vec<(&str, &str, &str)> = version
            .additional_printer_columns
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| (c.name.as_str(), c.type_.as_str(), c.json_path.as_str()))
            .collect();
        assert_eq!(
            columns,
            [
                ("Phase", "string", ".status.phase"),
                ("Last Success", "date", ".status.lastSuccessTime"),
                ("Age", "date", ".metadata.creationTimestamp"),
            ]
        );
    }
}
