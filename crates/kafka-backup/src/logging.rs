//! Logging to stderr (stdout carries command output): text for terminals, JSON for log
//! pipelines.

use clap::ValueEnum;
use tracing_subscriber::EnvFilter;

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The crates of this project: a bare `--log-level` (`debug`, `trace`) applies to them, so
/// that `trace` shows what kafka-backup does, not every HTTP frame of its dependencies.
const OWN_CRATES: [&str; 5] = [
    "kafka_backup",
    "backup_core",
    "backup_format",
    "kafka_client",
    "kafka_records",
];

/// The filter for `--log-level`: a bare level is this project's level, with dependencies at
/// no more than `info` (`warn` and `error` quieten everything); anything else (`a=debug,b`) is
/// a tracing filter taken as written.
fn filter_for(level: &str) -> Result<EnvFilter, String> {
    let invalid = |e: &dyn std::fmt::Display| format!("invalid --log-level `{level}`: {e}");
    let Ok(bare) = level.parse::<tracing::level_filters::LevelFilter>() else {
        return EnvFilter::try_new(level).map_err(|e| invalid(&e));
    };
    let deps = bare.min(tracing::level_filters::LevelFilter::INFO);
    let mut directives = vec![deps.to_string().to_lowercase()];
    directives.extend(
        OWN_CRATES
            .iter()
            .map(|krate| format!("{krate}={}", bare.to_string().to_lowercase())),
    );
    EnvFilter::try_new(directives.join(",")).map_err(|e| invalid(&e))
}

/// Colour only for a person at a terminal: never in files, pipes or log collectors (escape
/// codes would end up in their records), and never when `NO_COLOR` is set (no-color.org).
fn use_colour() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber. `level` wins over `RUST_LOG`; the default is `info`.
pub fn init(format: LogFormat, level: Option<&str>) -> Result<(), String> {
    let filter = match level {
        Some(l) => filter_for(l)?,
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_colour())
        .with_target(false);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    result.map_err(|e| format!("cannot set up logging: {e}"))
}

/// Reports the failure that ends the run: a plain `error:` paragraph for people, a structured
/// event for log pipelines. Either way it goes to stderr, whatever the log level.
pub fn report_failure(format: LogFormat, message: &str) {
    match format {
        // One paragraph: a control character in it came from outside (a broker's error text,
        // a name read from storage) and is shown escaped, never acted on by the terminal.
        LogFormat::Text => eprintln!("error: {}", crate::commands::one_line(message)),
        LogFormat::Json => {
            let line = serde_json::json!({ "level": "ERROR", "message": message });
            eprintln!("{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::filter_for;

    #[test]
    fn a_bare_level_is_this_projects_and_dependencies_stay_at_info() {
        let f = filter_for("trace").unwrap().to_string();
        assert!(f.contains("kafka_client=trace"), "{f}");
        assert!(f.contains("backup_core=trace"), "{f}");
        assert!(f.starts_with("info") || f.contains(",info"), "{f}");
        assert!(!f.split(',').any(|d| d == "trace"), "{f}");
    }

    #[test]
    fn quieter_levels_apply_to_everything() {
        let f = filter_for("warn").unwrap().to_string();
        assert!(f.split(',').any(|d| d == "warn"), "{f}");
        assert!(f.contains("kafka_backup=warn"), "{f}");
    }

    #[test]
    fn a_filter_is_taken_as_written() {
        let f = filter_for("hyper=trace,kafka_client=debug")
            .unwrap()
            .to_string();
        assert!(f.contains("hyper=trace"), "{f}");
        assert!(!f.contains("backup_core"), "{f}");
        assert!(filter_for("nonsense=verbose").is_err());
    }
}
