//! `kafka-backup operator`: the Kubernetes operator of KafkaBackup and KafkaRestore resources,
//! and `operator crds`, their CustomResourceDefinitions.

use std::io::Write as _;

use kafka_backup_operator::controller::{self, Config};
use kafka_backup_operator::crd::{crd_yaml, crds as definitions};
use kafka_backup_operator::render::RenderContext;

use crate::exit::{Exit, Failed};

/// Where the operator watches and what its Jobs run.
#[derive(Debug, Clone, clap::Args)]
pub struct OperatorArgs {
    /// Watch only this namespace. Default: the operator Pod's own namespace (from its
    /// ServiceAccount), or outside a cluster the current kubeconfig context's.
    #[arg(long, conflicts_with = "all_namespaces")]
    namespace: Option<String>,
    /// Watch every namespace (its ServiceAccount then needs the rules of deploy/rbac.yaml in a
    /// ClusterRole).
    #[arg(long)]
    all_namespaces: bool,
    /// The kafka-backup image of the rendered Jobs (a resource's spec.image overrides it):
    /// deploy/operator.yaml sets the operator's own, so both are of one version.
    #[arg(long, env = "KAFKA_BACKUP_IMAGE", value_name = "IMAGE")]
    image: Option<String>,
}

/// Runs the operator until SIGTERM or SIGINT.
pub async fn run(args: OperatorArgs) -> Result<Exit, Failed> {
    let image = args
        .image
        .filter(|image| !image.trim().is_empty())
        .ok_or_else(|| {
            Failed::new(
                Exit::Usage,
                "the operator needs the kafka-backup image its Jobs run: pass --image or set \
                 KAFKA_BACKUP_IMAGE (deploy/operator.yaml sets it to the operator's own image)"
                    .to_owned(),
            )
        })?;
    let client = controller::connect().await.map_err(unavailable)?;
    let namespace = if args.all_namespaces {
        None
    } else {
        Some(
            args.namespace
                .unwrap_or_else(|| client.default_namespace().to_owned()),
        )
    };
    controller::preflight(&client, namespace.as_deref())
        .await
        .map_err(unavailable)?;
    let config = Config {
        namespace,
        render: RenderContext {
            image,
            ..RenderContext::default()
        },
    };
    controller::run(client, config).await;
    Ok(Exit::Ok)
}

fn unavailable(error: controller::PreflightError) -> Failed {
    Failed::new(Exit::Failure, error.to_string())
}

/// Prints the CRDs as one YAML stream.
pub fn crds() -> Result<Exit, Failed> {
    let mut out = String::new();
    for (_, crd) in definitions() {
        let yaml = crd_yaml(&crd).map_err(|e| {
            Failed::new(
                Exit::Failure,
                format!("cannot serialise the CRDs as YAML: {e}"),
            )
        })?;
        out.push_str("---\n");
        out.push_str(&yaml);
    }
    std::io::stdout()
        .lock()
        .write_all(out.as_bytes())
        .map_err(|e| {
            Failed::new(
                Exit::Failure,
                format!("cannot write the CRDs to stdout: {e}"),
            )
        })?;
    Ok(Exit::Ok)
}
