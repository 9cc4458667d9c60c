//! deploy/rbac.yaml, deploy/rbac-all-namespaces.yaml and deploy/operator.yaml read as the
//! Kubernetes types, grant least privilege (no Secrets, nothing cluster-wide in the default
//! file) and run the operator as the rendered Pods run: non-root, read-only, unprivileged.

use std::collections::BTreeSet;
use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::de::DeserializeOwned;

fn documents(file: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    text.split("\n---\n").map(str::to_owned).collect()
}

fn read<T: DeserializeOwned>(file: &str, doc: &str) -> T {
    serde_saphyr::from_str(doc).unwrap_or_else(|e| {
        panic!(
            "{file}: a document does not read as {}: {e}",
            std::any::type_name::<T>()
        )
    })
}

/// Every (apiGroup, resource, verb) the rules grant, refusing wildcards and resource names.
fn grants(rules: &[PolicyRule]) -> BTreeSet<(String, String, String)> {
    let mut grants = BTreeSet::new();
    for rule in rules {
        assert_eq!(rule.resource_names, None);
        assert_eq!(rule.non_resource_urls, None);
        for group in rule.api_groups.iter().flatten() {
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    assert!(
                        group != "*" && resource != "*" && verb != "*",
                        "no wildcards: {rule:?}"
                    );
                    grants.insert((group.clone(), resource.clone(), verb.clone()));
                }
            }
        }
    }
    grants
}

fn expected_grants() -> BTreeSet<(String, String, String)> {
    let mut expected = BTreeSet::new();
    let mut add = |groups: &[&str], resources: &[&str], verbs: &[&str]| {
        for g in groups {
            for r in resources {
                for v in verbs {
                    expected.insert(((*g).to_owned(), (*r).to_owned(), (*v).to_owned()));
                }
            }
        }
    };
    let crs = ["kafkabackups", "kafkarestores"];
    add(&["kafka.oso.sh"], &crs, &["get", "list", "watch", "patch"]);
    add(
        &["kafka.oso.sh"],
        &["kafkabackups/status", "kafkarestores/status"],
        &["get", "patch"],
    );
    add(
        &["kafka.oso.sh"],
        &["kafkabackups/finalizers", "kafkarestores/finalizers"],
        &["update"],
    );
    let apply = ["get", "list", "watch", "create", "patch", "delete"];
    add(&[""], &["configmaps"], &apply);
    add(&["batch"], &["jobs", "cronjobs"], &apply);
    // No events: the controller emits none, and a grant it does not use is one an attacker
    // who takes the operator's token could.
    add(&[""], &["pods"], &["get", "list", "watch"]);
    expected
}

#[test]
fn the_operator_gets_exactly_what_it_needs_in_its_namespace_and_no_secrets() {
    let docs = documents("rbac.yaml");
    assert_eq!(docs.len(), 3, "ServiceAccount, Role, RoleBinding");
    let account: ServiceAccount = read("rbac.yaml", &docs[0]);
    let role: Role = read("rbac.yaml", &docs[1]);
    let binding: RoleBinding = read("rbac.yaml", &docs[2]);
    let granted = grants(role.rules.as_deref().unwrap_or_default());
    assert!(
        granted.iter().all(|(_, resource, _)| resource != "secrets"),
        "the operator never reads Secrets"
    );
    assert_eq!(granted, expected_grants());
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(Some(binding.role_ref.name), role.metadata.name);
    let subject = &binding.subjects.as_ref().expect("subjects")[0];
    assert_eq!(subject.kind, "ServiceAccount");
    assert_eq!(Some(&subject.name), account.metadata.name.as_ref());
    assert_eq!(subject.namespace, account.metadata.namespace);
    assert_eq!(role.metadata.namespace, account.metadata.namespace);
    assert_eq!(binding.metadata.namespace, account.metadata.namespace);
}

#[test]
fn all_namespaces_grants_the_same_rules_cluster_wide() {
    let docs = documents("rbac-all-namespaces.yaml");
    assert_eq!(docs.len(), 2, "ClusterRole, ClusterRoleBinding");
    let role: ClusterRole = read("rbac-all-namespaces.yaml", &docs[0]);
    let binding: ClusterRoleBinding = read("rbac-all-namespaces.yaml", &docs[1]);
    assert_eq!(
        grants(role.rules.as_deref().unwrap_or_default()),
        expected_grants()
    );
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(
        binding.subjects.as_ref().expect("subjects")[0].name,
        "kafka-backup-operator"
    );
}

#[test]
fn the_operator_runs_non_root_read_only_and_is_probed_on_its_metrics() {
    let docs = documents("operator.yaml");
    assert_eq!(docs.len(), 1);
    let deployment: Deployment = read("operator.yaml", &docs[0]);
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(1), "one operator: it holds no lease");
    let pod = spec.template.spec.expect("a Pod spec");
    assert_eq!(
        pod.service_account_name.as_deref(),
        Some("kafka-backup-operator")
    );
    let pod_security = pod.security_context.expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(pod_security.run_as_user, Some(65532));
    assert_eq!(
        pod_security.seccomp_profile.map(|p| p.type_),
        Some("RuntimeDefault".to_owned())
    );
    let container = &pod.containers[0];
    let security = container.security_context.clone().expect("securityContext");
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(
        security.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_owned()])
    );
    let resources = container.resources.clone().expect("resources");
    assert!(resources.requests.is_some() && resources.limits.is_some());
    let mut line = container.command.clone().expect("command");
    line.extend(container.args.clone().expect("args"));
    assert_eq!(
        line.join(" "),
        "kafka-backup --log-format json --metrics-addr 0.0.0.0:9308 operator"
    );
    let port = &container.ports.as_ref().expect("ports")[0];
    assert_eq!(
        (port.name.as_deref(), port.container_port),
        (Some("metrics"), 9308)
    );
    for probe in [&container.liveness_probe, &container.readiness_probe] {
        let get = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .expect("an HTTP probe");
        assert_eq!(get.path.as_deref(), Some("/metrics"));
        assert_eq!(
            serde_json::to_value(&get.port).expect("a port"),
            serde_json::json!("metrics")
        );
    }
    // The Jobs run the operator's own image.
    let image_env = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "KAFKA_BACKUP_IMAGE")
        .and_then(|e| e.value.clone());
    assert_eq!(image_env, container.image);
}
