//! Kafka's record batch format (magic v2) as it travels between brokers, clients and the
//! backup. Pure code over bytes, shared by the wire client and the backup format.
//!
//! - [`batch`]: the fixed batch header, length and CRC32C checks, splitting a fetched record
//!   set, and re-stamping for an idempotent producer.
//! - [`record`]: records (keys, values, headers, timestamps) and [`decode_batch`], which
//!   verifies, decompresses and decodes a batch without losing anything a consumer can see:
//!   null vs empty, header order and duplicate header keys, both timestamps.
//! - [`compression`]: gzip, snappy (raw and snappy-java framing), LZ4 frames and zstd, with a
//!   hard bound on decompressed size ([`DecodeLimits`]).
//! - [`encode`]: [`encode_batch`] builds valid batches (any codec) from records, for restores
//!   that cut or regroup batches.
//! - [`control`]: transaction markers (COMMIT/ABORT control batches).
//! - [`txn`]: which batches of a partition are committed data, from the broker's
//!   aborted-transaction list or from the markers in the log.
//!
//! Everything that reads bytes treats them as hostile (a corrupt backup file, a broken
//! broker): lengths are checked before slicing or allocating, decompression is bounded, and
//! failures are [`RecordError`]s that say where, never panics.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod batch;
pub mod compression;
pub mod control;
pub mod encode;
mod error;
pub mod record;
pub mod txn;
mod varint;

pub use batch::{BatchError, BatchHeader};
pub use compression::{Compression, CompressionError, DecodeLimits};
pub use control::{ControlKind, ControlMarker, encode_control_batch, parse_control_batch};
pub use encode::{EncodeOptions, encode_batch};
pub use error::RecordError;
pub use record::{DecodedBatch, Header, Record, TimestampType, decode_batch};
pub use txn::{
    AbortedTxnFilter, BatchSummary, Decision, MarkerFilter, MarkerIndex, OpenTransaction,
};
