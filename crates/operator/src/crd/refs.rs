//! References to keys of Secrets and ConfigMaps in the custom resource's namespace.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One key of a Secret in the same namespace as the custom resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretKeyRef {
    /// Name of the Secret (same namespace as this resource).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key in the Secret's data whose value is used.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// One key of a ConfigMap in the same namespace as the custom resource.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConfigMapKeyRef {
    /// Name of the ConfigMap (same namespace as this resource).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key in the ConfigMap's data whose value is used.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// AWS credentials held in a Secret, for a KMS key provider. Without this reference the
/// default AWS credential chain of the Pod applies (IRSA, EKS Pod Identity, instance role).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AwsCredentialsSecretRef {
    /// Name of the Secret (same namespace as this resource).
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key holding the access key id.
    #[schemars(length(min = 1))]
    pub access_key_id_key: String,
    /// Key holding the secret access key.
    #[schemars(length(min = 1))]
    pub secret_access_key_key: String,
    /// Key holding a session token, for temporary credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub session_token_key: Option<String>,
}
