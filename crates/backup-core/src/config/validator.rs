//! The state every section's checks share while a configuration is validated: where it came
//! from (for messages), the warnings so far, and the private key files it names.

use super::error::ConfigError;

/// Carries what every check needs: the origin for messages, and the warnings so far.
pub(super) struct Validator<'a> {
    pub(super) origin: &'a str,
    pub(super) warnings: Vec<String>,
    /// The private key files read, with the key that names each.
    pub(super) private_files: Vec<(String, std::path::PathBuf)>,
}

impl Validator<'_> {
    /// A [`ConfigError::Invalid`] for the value at `path`.
    pub(super) fn invalid(&self, path: String, line: Option<u32>, message: String) -> ConfigError {
        ConfigError::Invalid {
            origin: self.origin.to_owned(),
            path,
            line,
            message,
        }
    }
}
