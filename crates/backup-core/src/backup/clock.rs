//! The time as the backup's documents record it. Below every other file of the engine, so
//! that none of them needs another for it.

/// Now, as RFC 3339 in UTC.
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
