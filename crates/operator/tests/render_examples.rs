//! Test (1) of the operator: rendering, as pure functions, over the examples in deploy/examples
//! (the ones docs/kubernetes.md shows, Strimzi's included). What is rendered is checked
//! object by object, and the configuration is loaded by backup-core's own loader once the
//! Secret files it names exist.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use backup_core::config::{KUBERNETES_SECRETS_DIR, SaslCredentials, load_with_env};
use common::pod_files::{materialise, referenced_files};
use common::{Resource, example, examples};
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kafka_backup_operator::render::{
    CONFIG_DIR, RUN_AS, Rendered, SECRET_MODE, TERMINATION_LOG, Workload, secret_dir,
};

fn config_text(rendered: &Rendered) -> &str {
    rendered
        .config_map
        .data
        .as_ref()
        .and_then(|d| d.get("config.yaml"))
        .expect("the ConfigMap holds config.yaml")
}

/// The Job spec of the workload (a CronJob's template).
fn job_spec(rendered: &Rendered) -> &JobSpec {
    match &rendered.workload {
        Workload::Job(job) => job.spec.as_ref().expect("a Job spec"),
        Workload::CronJob(cron) => cron
            .spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .expect("a CronJob's Job spec"),
    }
}

fn pod(rendered: &Rendered) -> &PodTemplateSpec {
    &job_spec(rendered).template
}

fn pod_spec(rendered: &Rendered) -> &PodSpec {
    pod(rendered).spec.as_ref().expect("a Pod spec")
}

fn workload_meta(rendered: &Rendered) -> &ObjectMeta {
    match &rendered.workload {
        Workload::Job(job) => &job.metadata,
        Workload::CronJob(cron) => &cron.metadata,
    }
}

fn render(file: &str, resource: &Resource) -> Rendered {
    resource
        .render()
        .unwrap_or_else(|e| panic!("{file} does not render: {e}"))
}

#[test]
fn every_example_reads_as_the_crd_types_and_renders() {
    let examples = examples();
    let kinds: BTreeSet<&str> = examples
        .iter()
        .map(|(_, r)| match r {
            Resource::Backup(_) => "KafkaBackup",
            Resource::Restore(_) => "KafkaRestore",
        })
        .collect();
    assert_eq!(kinds, BTreeSet::from(["KafkaBackup", "KafkaRestore"]));
    for (file, resource) in &examples {
        let rendered = render(file, resource);
        assert!(
            config_text(&rendered).contains("\nmode: "),
            "{file}: {}",
            config_text(&rendered)
        );
    }
}

/// The configuration loads with backup-core's loader (the one kafka-backup runs in the Pod)
/// once the Secret files it names exist, and the `${file:}` references resolve to the files'
/// content.
#[test]
fn every_rendered_configuration_loads_with_the_secret_files_in_place() {
    for (file, resource) in examples() {
        let rendered = render(&file, &resource);
        let root = tempfile::tempdir().expect("a temp dir");
        let (config, values) = materialise(config_text(&rendered), root.path());
        let no_env = |_: &str| None;
        match load_with_env(&config, &no_env) {
            Ok(loaded) => {
                if let Some(sasl) = &loaded.cluster.security.sasl
                    && let SaslCredentials::Password(password) = &sasl.credentials
                {
                    let password_file = values
                        .iter()
                        .find(|(path, _)| path.ends_with("/password"))
                        .map(|(_, v)| v)
                        .expect("the password's Secret file");
                    assert_eq!(password.expose(), password_file, "{file}");
                }
            }
            // The default build has no Kerberos: the loader says so only after it has read
            // the keytab and krb5.conf, so the rest of the configuration was accepted.
            Err(e)
                if file.contains("gssapi")
                    && e.to_string()
                        .contains("GSSAPI (Kerberos) is not built into") => {}
            Err(e) => panic!(
                "{file}: the rendered configuration does not load: {e}\n{}",
                config_text(&rendered)
            ),
        }
    }
}

#[test]
fn a_scram_user_and_password_come_from_the_secret_files() {
    let rendered = render("scram", &example("backup-scram-s3.yaml"));
    let root = tempfile::tempdir().expect("a temp dir");
    let (config, values) = materialise(config_text(&rendered), root.path());
    let loaded = load_with_env(&config, &|_| None).expect("loads");
    let sasl = loaded.cluster.security.sasl.expect("SASL");
    let user_file = format!("{}/username", secret_dir("kafka-backup-scram"));
    assert_eq!(sasl.username, values[&user_file]);
    assert_eq!(sasl.mechanism.as_str(), "SCRAM-SHA-512");
}

/// Secret values are not in any rendered object: the configuration names Secret files only,
/// under the mount point; every key backup-core treats as a secret is such a reference; and
/// the container has no environment at all (no `value`, no `secretKeyRef`).
#[test]
fn no_secret_value_is_rendered() {
    const SECRET_KEYS: &[&str] = &[
        "sasl_password",
        "ssl_key_password",
        "sasl_oauthbearer_client_secret",
        "access_key",
        "secret_key",
        "session_token",
        "account_key",
        "sas_token",
        "access_key_id",
        "secret_access_key",
    ];
    for (file, resource) in examples() {
        let rendered = render(&file, &resource);
        let config = config_text(&rendered);
        for line in config.lines() {
            let Some((key, value)) = line.trim().split_once(": ") else {
                continue;
            };
            if SECRET_KEYS.contains(&key) {
                assert!(
                    value.starts_with(&format!("${{file:{KUBERNETES_SECRETS_DIR}/"))
                        && value.ends_with('}'),
                    "{file}: {key} is not a reference to a mounted Secret: {value}"
                );
            }
            if value.contains("${") {
                assert!(
                    value.starts_with("${file:/var/run/kafka-backup/secrets/"),
                    "{file}: only Secret file references: {line}"
                );
            }
        }
        for container in &pod_spec(&rendered).containers {
            assert_eq!(container.env, None, "{file}: no environment");
            assert_eq!(container.env_from, None, "{file}: no environment");
        }
        // The whole rendered output holds no Secret data field either.
        let json = serde_json::to_string(&(
            &rendered.config_map,
            match &rendered.workload {
                Workload::Job(j) => serde_json::to_value(j),
                Workload::CronJob(c) => serde_json::to_value(c),
            }
            .expect("serialises"),
        ))
        .expect("serialises");
        assert!(!json.contains("secretKeyRef"), "{file}");
        assert!(!json.contains("stringData"), "{file}");
    }
}

#[test]
fn pods_run_as_non_root_with_a_read_only_root_and_no_privilege() {
    for (file, resource) in examples() {
        let rendered = render(&file, &resource);
        let spec = pod_spec(&rendered);
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"), "{file}");
        assert_eq!(spec.automount_service_account_token, Some(false), "{file}");
        let pod_security = spec.security_context.as_ref().expect("pod securityContext");
        assert_eq!(pod_security.run_as_non_root, Some(true), "{file}");
        assert_eq!(pod_security.run_as_user, Some(RUN_AS), "{file}");
        assert_eq!(pod_security.run_as_group, Some(RUN_AS), "{file}");
        assert_eq!(pod_security.fs_group, Some(RUN_AS), "{file}");
        assert_eq!(
            pod_security
                .seccomp_profile
                .as_ref()
                .map(|p| p.type_.as_str()),
            Some("RuntimeDefault"),
            "{file}"
        );
        assert_eq!(spec.containers.len(), 1, "{file}");
        let container = &spec.containers[0];
        let security = container
            .security_context
            .as_ref()
            .expect("securityContext");
        assert_eq!(security.read_only_root_filesystem, Some(true), "{file}");
        assert_eq!(security.allow_privilege_escalation, Some(false), "{file}");
        assert_eq!(
            security.capabilities.as_ref().and_then(|c| c.drop.clone()),
            Some(vec!["ALL".to_owned()]),
            "{file}"
        );
        assert_eq!(
            security.capabilities.as_ref().and_then(|c| c.add.clone()),
            None
        );
        assert_eq!(
            container.termination_message_path.as_deref(),
            Some(TERMINATION_LOG)
        );
        assert_eq!(
            container.termination_message_policy.as_deref(),
            Some("File")
        );
        assert_eq!(container.image.as_deref(), Some(common::IMAGE), "{file}");
        let command = match resource {
            Resource::Backup(_) => "backup",
            Resource::Restore(_) => "restore",
        };
        let mut line = container.command.clone().expect("a command");
        line.extend(container.args.clone().expect("args"));
        assert_eq!(
            line.join(" "),
            format!(
                "kafka-backup --log-format json --summary-file /dev/termination-log \
                 --metrics-addr 0.0.0.0:9308 {command} --config /etc/kafka-backup/config.yaml"
            ),
            "{file}"
        );
    }
}

/// Each Secret the configuration names is one volume, mounted whole and read-only at its
/// directory under the mount point, mode 0400; nothing else is mounted besides the
/// configuration, /tmp and the ConfigMaps the configuration names.
#[test]
fn secrets_are_mounted_whole_read_only_at_mode_0400() {
    for (file, resource) in examples() {
        let rendered = render(&file, &resource);
        let spec = pod_spec(&rendered);
        let volumes = spec.volumes.as_ref().expect("volumes");
        let mounts = spec.containers[0]
            .volume_mounts
            .as_ref()
            .expect("volume mounts");
        let referenced: BTreeSet<String> = referenced_files(config_text(&rendered))
            .into_iter()
            .filter_map(|(_, path)| {
                let rest = path.strip_prefix(&format!("{KUBERNETES_SECRETS_DIR}/"))?;
                Some(rest.split('/').next()?.to_owned())
            })
            .collect();
        let mut mounted = BTreeSet::new();
        for volume in volumes {
            let mount = mounts
                .iter()
                .find(|m| m.name == volume.name)
                .unwrap_or_else(|| panic!("{file}: volume {} is not mounted", volume.name));
            if let Some(secret) = &volume.secret {
                let name = secret.secret_name.clone().expect("a Secret name");
                assert_eq!(secret.default_mode, Some(SECRET_MODE), "{file}: {name}");
                assert_eq!(SECRET_MODE, 0o400);
                assert_eq!(secret.items, None, "{file}: {name} is mounted whole");
                assert_eq!(mount.read_only, Some(true), "{file}: {name}");
                assert_eq!(mount.mount_path, secret_dir(&name), "{file}");
                assert_eq!(mount.sub_path, None, "{file}: a subPath never updates");
                mounted.insert(name);
            } else if let Some(config_map) = &volume.config_map {
                assert_eq!(mount.read_only, Some(true), "{file}: {}", config_map.name);
            } else if volume.empty_dir.is_some() {
                assert_eq!(mount.mount_path, "/tmp", "{file}");
            } else {
                panic!("{file}: unexpected volume {volume:?}");
            }
        }
        assert_eq!(
            mounted, referenced,
            "{file}: the Secrets mounted are the ones named"
        );
        let config = mounts
            .iter()
            .find(|m| m.mount_path == CONFIG_DIR)
            .expect("the configuration is mounted");
        assert_eq!(config.read_only, Some(true));
    }
}

#[test]
fn strimzi_secrets_are_mounted_as_strimzi_creates_them() {
    let rendered = render("strimzi", &example("backup-strimzi-mtls-irsa.yaml"));
    let config = config_text(&rendered);
    for line in [
        "ssl_ca_location: /var/run/kafka-backup/secrets/my-cluster-cluster-ca-cert/ca.crt",
        "ssl_certificate_location: /var/run/kafka-backup/secrets/backup-user/user.crt",
        "ssl_key_location: /var/run/kafka-backup/secrets/backup-user/user.key",
    ] {
        assert!(config.contains(line), "{line} in\n{config}");
    }
    let spec = pod_spec(&rendered);
    let secrets: Vec<String> = spec
        .volumes
        .iter()
        .flatten()
        .filter_map(|v| v.secret.as_ref()?.secret_name.clone())
        .collect();
    assert_eq!(secrets, ["backup-user", "my-cluster-cluster-ca-cert"]);
    // IRSA: no storage credentials at all, the role comes with the ServiceAccount.
    assert!(!config.contains("access_key"), "{config}");
    assert_eq!(spec.service_account_name.as_deref(), Some("kafka-backup"));
    let Workload::CronJob(cron) = &rendered.workload else {
        panic!("a schedule renders a CronJob");
    };
    let cron_spec = cron.spec.as_ref().expect("spec");
    assert_eq!(cron_spec.schedule, "0 2 * * *");
    assert_eq!(cron_spec.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(cron_spec.concurrency_policy.as_deref(), Some("Forbid"));
}

#[test]
fn everything_rendered_is_owned_by_and_labelled_with_the_resource() {
    for (file, resource) in examples() {
        let rendered = render(&file, &resource);
        let (kind, label) = match &resource {
            Resource::Backup(_) => ("KafkaBackup", "kafka.oso.sh/backup"),
            Resource::Restore(_) => ("KafkaRestore", "kafka.oso.sh/restore"),
        };
        let name = resource.name();
        let expected: BTreeMap<String, String> = [
            ("app.kubernetes.io/name", "kafka-backup"),
            ("app.kubernetes.io/managed-by", "kafka-backup-operator"),
            ("app.kubernetes.io/instance", name.as_str()),
            (label, name.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (what, meta) in [
            ("ConfigMap", &rendered.config_map.metadata),
            ("workload", workload_meta(&rendered)),
        ] {
            assert_eq!(meta.labels.as_ref(), Some(&expected), "{file}: {what}");
            assert_eq!(meta.namespace.as_deref(), Some("kafka"), "{file}: {what}");
            let owners = meta.owner_references.as_ref().expect("owner references");
            assert_eq!(owners.len(), 1, "{file}: {what}");
            let owner = &owners[0];
            assert_eq!(owner.api_version, "kafka.oso.sh/v1alpha1");
            assert_eq!(owner.kind, kind);
            assert_eq!(owner.name, name);
            assert!(
                owner.uid.starts_with("00000000-"),
                "{file}: the resource's uid"
            );
            assert_eq!(owner.controller, Some(true));
            assert_eq!(owner.block_owner_deletion, Some(true));
        }
        assert_eq!(
            rendered.config_map.metadata.name,
            Some(format!("{name}-config"))
        );
        let workload_name = match &resource {
            Resource::Backup(_) => name.clone(),
            Resource::Restore(_) => format!("{name}-restore"),
        };
        assert_eq!(workload_meta(&rendered).name.as_ref(), Some(&workload_name));
        // The controller finds each run's Jobs and Pods by these labels.
        let pod_labels = pod(&rendered)
            .metadata
            .as_ref()
            .and_then(|m| m.labels.as_ref());
        assert_eq!(pod_labels, Some(&expected), "{file}: Pod labels");
        if let Workload::CronJob(cron) = &rendered.workload {
            let job_labels = cron
                .spec
                .as_ref()
                .and_then(|s| s.job_template.metadata.as_ref())
                .and_then(|m| m.labels.as_ref());
            assert_eq!(job_labels, Some(&expected), "{file}: Job template labels");
        }
    }
}

#[test]
fn shards_render_an_indexed_job_and_the_count_in_the_configuration() {
    let rendered = render("sharded", &example("backup-sharded-encrypted.yaml"));
    let Workload::CronJob(_) = &rendered.workload else {
        panic!("the sharded example is scheduled");
    };
    let spec = job_spec(&rendered);
    assert_eq!(spec.completion_mode.as_deref(), Some("Indexed"));
    assert_eq!(spec.completions, Some(3));
    assert_eq!(spec.parallelism, Some(3));
    let config = config_text(&rendered);
    assert!(config.contains("\n  shards: 3\n"), "{config}");

    // One shard: a plain Job, and no count in the configuration.
    let rendered = render("scram", &example("backup-scram-s3.yaml"));
    let Workload::Job(_) = &rendered.workload else {
        panic!("no schedule renders a Job");
    };
    let spec = job_spec(&rendered);
    assert_eq!(spec.completion_mode, None);
    assert_eq!(spec.completions, None);
    assert_eq!(spec.parallelism, None);
    assert!(!config_text(&rendered).contains("shards"));
    assert_eq!(spec.backoff_limit, Some(2));
    let rule = &spec
        .pod_failure_policy
        .as_ref()
        .expect("a pod failure policy")
        .rules[0];
    assert_eq!(rule.action, "FailJob");
    assert_eq!(
        rule.on_exit_codes.as_ref().map(|c| c.values.clone()),
        Some(vec![2, 3]),
        "a configuration error is not retried"
    );
}

#[test]
fn a_schedule_renders_a_cron_job_and_none_a_job() {
    for (file, resource) in examples() {
        let rendered = render(&file, &resource);
        let scheduled = matches!(&resource, Resource::Backup(kb) if kb.spec.schedule.is_some());
        assert_eq!(
            matches!(rendered.workload, Workload::CronJob(_)),
            scheduled,
            "{file}"
        );
    }
}

#[test]
fn suspend_is_honoured() {
    for file in ["backup-sharded-encrypted.yaml", "backup-scram-s3.yaml"] {
        let Resource::Backup(mut kb) = example(file) else {
            panic!("{file} is a backup");
        };
        for suspend in [true, false] {
            kb.spec.suspend = Some(suspend);
            let rendered = render(file, &Resource::Backup(kb.clone()));
            let suspended = match &rendered.workload {
                Workload::CronJob(cron) => {
                    // The CronJob stops starting runs; the Jobs it starts are not suspended.
                    assert_eq!(job_spec(&rendered).suspend, None);
                    cron.spec.as_ref().and_then(|s| s.suspend)
                }
                Workload::Job(job) => job.spec.as_ref().and_then(|s| s.suspend),
            };
            assert_eq!(suspended, Some(suspend), "{file}");
        }
    }
}

/// docs/kubernetes.md shows the examples by path: every example is listed there, and every
/// example it links exists (so what the docs show is what these tests render).
#[test]
fn the_docs_list_exactly_the_examples() {
    let docs_path = common::examples_dir().join("../../docs/kubernetes.md");
    let docs = std::fs::read_to_string(&docs_path).expect("docs/kubernetes.md is readable");
    let files: BTreeSet<String> = examples().into_iter().map(|(file, _)| file).collect();
    let linked: BTreeSet<String> = docs
        .split("](../deploy/examples/")
        .skip(1)
        .filter_map(|rest| Some(rest.split_once(')')?.0.to_owned()))
        .collect();
    assert_eq!(linked, files, "docs/kubernetes.md links these examples");
}
