//! The Pod that runs kafka-backup: its container, security settings and volumes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, KeyToPath,
    PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec, PodTemplateSpec,
    ResourceRequirements, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::mounts::{
    CONFIG_DIR, CONFIG_KEY, CONFIG_MAPS_DIR, Mounts, TERMINATION_LOG, TMP_DIR, secret_dir,
};

/// The user and group the container runs as: not root, and the `nonroot` user of distroless
/// images, so files the image ships stay readable.
pub const RUN_AS: i64 = 65532;
/// Mode of mounted Secret files: readable by their owner only (the kubelet adds group read
/// for `fsGroup`, which is the same single user here).
pub const SECRET_MODE: i32 = 0o400;
/// Port of `--metrics-addr`: Prometheus scrapes the running Pod there.
pub const METRICS_PORT: i32 = 9308;
/// Name of the one container, for `kubectl logs -c` and the controller's lookups.
pub const CONTAINER: &str = "kafka-backup";

/// What the Pod runs besides the files of the configuration.
pub(super) struct PodInputs {
    /// `backup` or `restore`.
    pub command: &'static str,
    pub image: String,
    pub image_pull_policy: Option<String>,
    pub service_account_name: Option<String>,
    pub resources: Option<ResourceRequirements>,
    /// The rendered ConfigMap.
    pub config_map: String,
    pub labels: BTreeMap<String, String>,
    /// A PersistentVolumeClaim and where to mount it (filesystem storage).
    pub volume_claim: Option<(String, String)>,
}

/// The command line of the container: a summary for the termination message, JSON logs and
/// metrics for the cluster's collectors.
pub(super) fn args(command: &str) -> Vec<String> {
    [
        "--log-format",
        "json",
        "--summary-file",
        TERMINATION_LOG,
        "--metrics-addr",
        &format!("0.0.0.0:{METRICS_PORT}"),
        command,
        "--config",
        &format!("{CONFIG_DIR}/{CONFIG_KEY}"),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

/// The Pod template, with a volume for each Secret and ConfigMap in `mounts`.
pub(super) fn pod_template(inputs: PodInputs, mounts: &Mounts) -> PodTemplateSpec {
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: inputs.config_map.clone(),
                items: Some(vec![KeyToPath {
                    key: CONFIG_KEY.into(),
                    path: CONFIG_KEY.into(),
                    mode: None,
                }]),
                default_mode: Some(0o444),
                optional: Some(false),
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut volume_mounts = vec![
        mount("config", CONFIG_DIR, true),
        mount("tmp", TMP_DIR, false),
    ];
    // Volume names are indexed rather than derived from object names: those may be longer
    // than a volume name may be, and hold dots.
    for (index, secret) in mounts.secrets().enumerate() {
        let name = format!("secret-{index}");
        volumes.push(Volume {
            name: name.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.to_owned()),
                default_mode: Some(SECRET_MODE),
                optional: Some(false),
                items: None,
            }),
            ..Volume::default()
        });
        volume_mounts.push(mount(&name, &secret_dir(secret), true));
    }
    for (index, config_map) in mounts.config_maps().enumerate() {
        let name = format!("configmap-{index}");
        volumes.push(Volume {
            name: name.clone(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.to_owned(),
                default_mode: Some(0o444),
                optional: Some(false),
                items: None,
            }),
            ..Volume::default()
        });
        volume_mounts.push(mount(
            &name,
            &format!("{CONFIG_MAPS_DIR}/{config_map}"),
            true,
        ));
    }
    if let Some((claim, path)) = &inputs.volume_claim {
        volumes.push(Volume {
            name: "storage".into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: claim.clone(),
                read_only: Some(false),
            }),
            ..Volume::default()
        });
        volume_mounts.push(mount("storage", path, false));
    }
    let container = Container {
        name: CONTAINER.into(),
        image: Some(inputs.image),
        image_pull_policy: inputs.image_pull_policy,
        command: Some(vec!["kafka-backup".into()]),
        args: Some(args(inputs.command)),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: METRICS_PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        resources: inputs.resources,
        security_context: Some(SecurityContext {
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            privileged: Some(false),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                add: None,
            }),
            ..SecurityContext::default()
        }),
        termination_message_path: Some(TERMINATION_LOG.into()),
        termination_message_policy: Some("File".into()),
        volume_mounts: Some(volume_mounts),
        ..Container::default()
    };
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(inputs.labels),
            ..ObjectMeta::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".into()),
            service_account_name: inputs.service_account_name,
            // The Pod never talks to the Kubernetes API; cloud workload identities (IRSA, EKS
            // Pod Identity, GKE and Azure) bring their own projected tokens.
            automount_service_account_token: Some(false),
            // Service links would put every Service of the namespace into the environment.
            enable_service_links: Some(false),
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(RUN_AS),
                run_as_group: Some(RUN_AS),
                fs_group: Some(RUN_AS),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".into(),
                    localhost_profile: None,
                }),
                ..PodSecurityContext::default()
            }),
            containers: vec![container],
            volumes: Some(volumes),
            ..PodSpec::default()
        }),
    }
}

fn mount(volume: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..VolumeMount::default()
    }
}
