//! Key files named in the configuration (encryption and signing keys): read once at load time,
//! bounded, with errors that name the key, the file and the fix, and a warning when a private
//! key is readable by other users.

use std::fs::File;
use std::io::Read as _;
use std::path::PathBuf;

use zeroize::Zeroizing;

use super::env::ConfigString;
use super::error::ConfigError;
use super::validator::Validator;

/// Largest key file read. Real ones are well under 1 KiB; the cap keeps a wrong path (a log,
/// a device) from being read into memory.
pub(crate) const MAX_KEY_FILE_BYTES: usize = 64 * 1024;

/// A key file's contents, zeroed when dropped.
pub(crate) struct KeyFile {
    /// The path as configured.
    pub path: PathBuf,
    /// The bytes.
    pub bytes: Zeroizing<Vec<u8>>,
}

impl KeyFile {
    /// The contents as text; the error says what the file should hold.
    pub(crate) fn text(&self) -> Option<&str> {
        std::str::from_utf8(&self.bytes).ok()
    }
}

/// What a private key file lets its reader do, for the permission warning.
pub(crate) struct Private<'a> {
    /// What the file is, e.g. "age identity file".
    pub what: &'a str,
    /// What whoever can read it can do, e.g. "decrypt every backup encrypted to it".
    pub power: &'a str,
}

impl Validator<'_> {
    /// Reads the key file named by `value` (at `path_key`). With `private`, warns when the
    /// file is readable by group or others.
    pub(super) fn read_key_file(
        &mut self,
        path_key: &str,
        value: &ConfigString,
        private: Option<Private<'_>>,
    ) -> Result<KeyFile, ConfigError> {
        let path = self.readable_file(path_key, value)?;
        let shown = path.display().to_string();
        let fail = |message: String| self.invalid(path_key.to_owned(), value.line, message);
        let mut file = File::open(&path).map_err(|e| {
            fail(format!(
                "names {shown}, which cannot be read ({e}); make it readable by the user that \
                 runs kafka-backup"
            ))
        })?;
        let mut bytes = Zeroizing::new(Vec::new());
        (&mut file)
            .take(MAX_KEY_FILE_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| fail(format!("names {shown}, which cannot be read ({e})")))?;
        if bytes.len() > MAX_KEY_FILE_BYTES {
            return Err(fail(format!(
                "names {shown}, which is larger than {} KiB: not a key file; check the path",
                MAX_KEY_FILE_BYTES / 1024
            )));
        }
        if let Some(private) = private {
            self.warn_if_readable_by_others(path_key, &private, &path);
            self.private_files.push((path_key.to_owned(), path.clone()));
        }
        Ok(KeyFile { path, bytes })
    }

    fn warn_if_readable_by_others(
        &mut self,
        path_key: &str,
        private: &Private<'_>,
        path: &PathBuf,
    ) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o044 != 0 {
                    let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
                        (true, true) => "its group and all other users",
                        (true, false) => "its group",
                        _ => "all other users",
                    };
                    self.warnings.push(format!(
                        "{path_key}: the {} {} is readable by {who} (mode {mode:03o}); whoever can \
                         read it can {}: run chmod 600 {}",
                        private.what,
                        path.display(),
                        private.power,
                        path.display()
                    ));
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = (path_key, private, path);
        }
    }
}
