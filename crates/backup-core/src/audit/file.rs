//! The JSON-lines file sink: one event per line, appended under an exclusive lock so that
//! concurrent commands on one host keep one chain.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;

use backup_format::signing::SigningKey;

use super::chain::{self, MAX_LINE};
use super::{AuditError, AuditEvent};

/// Appends `event` to the file at `path` (created 0600 when missing), chained to its last
/// line and signed with `key` when given. Returns the line written.
///
/// The file is locked exclusively (`flock`) from reading its last line to writing the new
/// one, and the line is written with one `write` and synced before returning.
pub fn append(
    path: &Path,
    event: &AuditEvent,
    key: Option<&SigningKey>,
) -> Result<String, AuditError> {
    let io = |source| AuditError::File {
        path: path.display().to_string(),
        source,
    };
    let mut options = OpenOptions::new();
    options.read(true).append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(io)?;
    file.lock().map_err(io)?;
    let (last, torn) = last_line(&mut file).map_err(io)?;
    let prev = match last {
        None => None,
        Some(line) => Some(
            chain::link_of(&line).ok_or_else(|| AuditError::Unchainable {
                path: path.display().to_string(),
                reason: if torn {
                    "it was cut off before its end".to_owned()
                } else {
                    "it does not parse as one".to_owned()
                },
            })?,
        ),
    };
    let line = chain::seal(event, prev.as_ref(), key)?;
    let mut bytes = Vec::with_capacity(line.len() + 1);
    bytes.extend_from_slice(line.as_bytes());
    bytes.push(b'\n');
    file.write_all(&bytes).map_err(io)?;
    file.sync_data().map_err(io)?;
    file.unlock().map_err(io)?;
    Ok(line)
}

/// The file's last line (without its newline), and whether it lacks one (a torn write).
/// Reads at most the last [`MAX_LINE`] bytes.
fn last_line(file: &mut File) -> std::io::Result<(Option<String>, bool)> {
    let len = file.seek(SeekFrom::End(0))?;
    if len == 0 {
        return Ok((None, false));
    }
    let from = len.saturating_sub(MAX_LINE as u64 + 1);
    file.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    file.take(len - from).read_to_end(&mut tail)?;
    let torn = tail.last() != Some(&b'\n');
    if !torn {
        tail.pop();
    }
    let start = tail
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |at| at + 1);
    if start == 0 && from > 0 {
        // Longer than any event: no line to chain to.
        return Ok((Some(String::new()), torn));
    }
    Ok((
        Some(String::from_utf8_lossy(&tail[start..]).into_owned()),
        torn,
    ))
}

/// Reads the file's lines in order, calling `each` with the line number (from 1) and the
/// line; a line longer than [`MAX_LINE`] is passed truncated to that length (the check
/// refuses it). Stops when `each` returns false.
pub fn read_lines(path: &Path, mut each: impl FnMut(u64, &str) -> bool) -> Result<(), AuditError> {
    let io = |source| AuditError::File {
        path: path.display().to_string(),
        source,
    };
    let mut reader = BufReader::new(File::open(path).map_err(io)?);
    let mut number = 0;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Bounded: at most MAX_LINE + 1 bytes of one line are held.
        let n = (&mut reader)
            .take(MAX_LINE as u64 + 2)
            .read_until(b'\n', &mut buf)
            .map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        number += 1;
        let complete = buf.last() == Some(&b'\n');
        if complete {
            buf.pop();
        } else if buf.len() > MAX_LINE {
            // Skip the rest of this overlong line.
            let mut rest = Vec::new();
            loop {
                rest.clear();
                let m = (&mut reader)
                    .take(MAX_LINE as u64)
                    .read_until(b'\n', &mut rest)
                    .map_err(io)?;
                if m == 0 || rest.last() == Some(&b'\n') {
                    break;
                }
            }
        }
        let line = String::from_utf8_lossy(&buf);
        if !each(number, &line) {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::chain::Verifier;
    use backup_format::signing::VerifyingKeys;

    fn event(command: &str) -> AuditEvent {
        AuditEvent {
            time: crate::audit::now(),
            command: command.into(),
            host: "h".into(),
            pid: 1,
            invocation: "i".into(),
            tool_version: "t".into(),
            ..AuditEvent::default()
        }
    }

    fn verify(path: &Path, keys: &VerifyingKeys) -> chain::Verification {
        let mut v = Verifier::new(keys);
        read_lines(path, |n, line| {
            v.check(&format!("line {n}"), line);
            !v.broken()
        })
        .unwrap();
        v.finish()
    }

    #[test]
    fn appends_chain_across_calls_and_threads_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let key = SigningKey::generate().unwrap().0;
        std::thread::scope(|s| {
            for t in 0..4 {
                let (path, key) = (&path, &key);
                s.spawn(move || {
                    for _ in 0..10 {
                        append(path, &event(&format!("t{t}")), Some(key)).unwrap();
                    }
                });
            }
        });
        let keys = VerifyingKeys::new(vec![key.verifying_key().clone()]);
        let v = verify(&path, &keys);
        assert_eq!(v.first_break, None, "{v:?}");
        assert_eq!((v.events, v.last_seq), (40, Some(40)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_torn_last_line_is_not_chained_to() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        append(&path, &event("a"), None).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":2,\"prev").unwrap();
        let e = append(&path, &event("b"), None).unwrap_err().to_string();
        assert!(e.contains("cut off before its end"), "{e}");
        assert!(e.contains("audit verify --file"), "{e}");
    }

    #[test]
    fn an_overlong_line_is_refused_without_being_held() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        append(&path, &event("a"), None).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&vec![b'x'; 3 * MAX_LINE]).unwrap();
        f.write_all(b"\n").unwrap();
        let v = verify(&path, &VerifyingKeys::default());
        let b = v.first_break.unwrap();
        assert_eq!(b.at, "line 2");
        assert!(
            b.reason.contains("longer than any audit event"),
            "{}",
            b.reason
        );
    }
}
