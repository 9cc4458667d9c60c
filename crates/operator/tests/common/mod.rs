//! Shared by the operator's integration tests: the examples under deploy/examples, read as
//! the API server would hand them to the operator.

#![allow(dead_code)] // Each test binary uses a part.

pub mod kubelet;
pub mod pod_files;

use std::path::{Path, PathBuf};

use kafka_backup_operator::crd::{KafkaBackup, KafkaRestore};
use kafka_backup_operator::render::{
    RenderContext, RenderError, Rendered, render_backup, render_restore,
};

/// The image the tests render with.
pub const IMAGE: &str = "registry.example/kafka-backup:0.1.0";

/// A resource of either kind.
#[derive(Clone, Debug)]
pub enum Resource {
    /// A `KafkaBackup`.
    Backup(Box<KafkaBackup>),
    /// A `KafkaRestore`.
    Restore(Box<KafkaRestore>),
}

impl Resource {
    /// Renders it with the tests' context.
    pub fn render(&self) -> Result<Rendered, RenderError> {
        match self {
            Self::Backup(kb) => render_backup(kb, &context()),
            Self::Restore(kr) => render_restore(kr, &context()),
        }
    }

    /// Its name.
    pub fn name(&self) -> String {
        match self {
            Self::Backup(kb) => kb.metadata.name.clone().unwrap_or_default(),
            Self::Restore(kr) => kr.metadata.name.clone().unwrap_or_default(),
        }
    }

    /// The `KafkaBackup`, or a test failure.
    pub fn backup(&self) -> &KafkaBackup {
        match self {
            Self::Backup(kb) => kb,
            Self::Restore(_) => panic!("{} is a KafkaRestore", self.name()),
        }
    }
}

/// The context the tests render with.
pub fn context() -> RenderContext {
    RenderContext {
        image: IMAGE.into(),
        ..RenderContext::default()
    }
}

/// deploy/examples.
pub fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples")
}

/// Every example (file name, resource), sorted by file name, each with the metadata the API
/// server adds (a uid) so that it renders as the operator would see it.
pub fn examples() -> Vec<(String, Resource)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("deploy/examples is readable")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "the examples are there: {files:?}");
    files
        .into_iter()
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).expect("an example is readable");
            (name.clone(), parse(&name, &text))
        })
        .collect()
}

/// One example by file name.
pub fn example(file: &str) -> Resource {
    examples()
        .into_iter()
        .find(|(name, _)| name == file)
        .unwrap_or_else(|| panic!("no example {file}"))
        .1
}

/// A resource's YAML as the CRD types read it, with a uid as from the API server.
pub fn parse(origin: &str, text: &str) -> Resource {
    let kind: serde_json::Value =
        serde_saphyr::from_str(text).unwrap_or_else(|e| panic!("{origin} is not YAML: {e}"));
    let uid = format!("00000000-0000-4000-8000-{:012x}", origin.len());
    match kind["kind"].as_str() {
        Some("KafkaBackup") => {
            let mut kb: KafkaBackup = serde_saphyr::from_str(text)
                .unwrap_or_else(|e| panic!("{origin} does not read as a KafkaBackup: {e}"));
            kb.metadata.uid = Some(uid);
            Resource::Backup(Box::new(kb))
        }
        Some("KafkaRestore") => {
            let mut kr: KafkaRestore = serde_saphyr::from_str(text)
                .unwrap_or_else(|e| panic!("{origin} does not read as a KafkaRestore: {e}"));
            kr.metadata.uid = Some(uid);
            Resource::Restore(Box::new(kr))
        }
        other => panic!("{origin} has kind {other:?}"),
    }
}
