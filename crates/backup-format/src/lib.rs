//! kafka-backup's on-storage formats: pure code over bytes, with no network and no async, so
//! that it is easy to test exhaustively and to fuzz.
//!
//! - [`segment`]: one object holding a contiguous range of one partition, Kafka record
//!   batches stored exactly as the broker sent them, in independently compressed chunks.
//! - [`naming`]: object keys. They carry what a new run needs to resume by LIST alone (the
//!   backup identity may not read), including each segment's SHA-256.
//! - [`manifest`]: what each run wrote (one or more manifest parts per run), and the backup
//!   descriptor.
//! - [`shard`]: which shard of a sharded backup owns a partition, and shard lanes of runs.
//!
//! Every reader treats its input as hostile: bounded lengths everywhere, magic and version
//! checks, and errors (never panics or unbounded allocations) for corrupt bytes.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod crypto;
mod error;
mod hex;
pub mod manifest;
pub mod naming;
pub mod segment;
pub mod shard;
pub mod signing;

pub use error::FormatError;
pub use manifest::{BackupDescriptor, ManifestError, RunManifest, SegmentEntry};
pub use naming::{GapKey, ManifestKey, NameError, SegmentKey};
pub use segment::{
    AbortedTransaction, Compression, FinishedSegment, ReaderLimits, Segment, SegmentHeader,
    SegmentReader, SegmentTrailer, SegmentWriter, TxnMarker, WriterOptions, peek_header, read_all,
};
pub use shard::{Shard, ShardError};
