//! The CRD manifests under `deploy/crds/`, generated from the types.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use super::{KafkaBackup, KafkaRestore};

/// The command that regenerates the files under `deploy/crds/`.
pub const REGENERATE_COMMAND: &str =
    "KB_UPDATE_CRDS=1 cargo test -p kafka-backup-operator --test crds";

/// The CustomResourceDefinitions the operator needs, with the file name each has under
/// `deploy/crds/`.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("kafkabackups.yaml", KafkaBackup::crd()),
        ("kafkarestores.yaml", KafkaRestore::crd()),
    ]
}

/// A CRD as the YAML file committed under `deploy/crds/`, headed by a comment naming the
/// command that regenerates it.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_saphyr::SerializeError> {
    let body = serde_saphyr::to_string(crd)?;
    Ok(format!(
        "# Generated from the Rust types of crates/operator/src/crd: do not edit.\n\
         # Regenerate with: {REGENERATE_COMMAND}\n{body}"
    ))
}
