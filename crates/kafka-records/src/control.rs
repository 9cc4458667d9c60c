//! Transaction markers: the control batches a transaction coordinator writes to end a
//! transaction in each partition. They take an offset but are never data; a consumer (and a
//! restore) must not see them as records.
//!
//! A marker batch has the control (and transactional) attribute bits and one record:
//! key = version i16 (0) + type i16 (0 ABORT, 1 COMMIT); value = version i16 (0) +
//! coordinator epoch i32. Parsing follows Kafka's `ControlRecordType.parse` and
//! `EndTransactionMarker.deserialize`: newer versions are read by their version-0 prefix.

use bytes::{Bytes, BytesMut};

use crate::batch::{ATTR_CONTROL, ATTRIBUTES_OFFSET, CRC_OFFSET};
use crate::encode::{EncodeOptions, encode_batch};
use crate::error::RecordError;
use crate::record::{DecodedBatch, Record};

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlKind {
    /// The transaction's records are discarded (control type 0).
    Abort,
    /// The transaction's records are visible (control type 1).
    Commit,
}

impl ControlKind {
    /// The control record type on the wire.
    pub fn type_id(self) -> i16 {
        match self {
            Self::Abort => 0,
            Self::Commit => 1,
        }
    }
}

/// A parsed transaction marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ControlMarker {
    /// Commit or abort.
    pub kind: ControlKind,
    /// The producer whose open transaction this marker ends.
    pub producer_id: i64,
    /// The producer epoch (bumped when the coordinator fences a producer).
    pub producer_epoch: i16,
    /// The marker's own offset.
    pub offset: i64,
    /// The coordinator epoch that wrote the marker.
    pub coordinator_epoch: i32,
    /// The marker record's timestamp.
    pub timestamp: i64,
}

/// Reads the transaction marker in a decoded control batch.
///
/// Errors when the batch is not a control batch, does not hold exactly one record, the key or
/// value is null or too short, or the control type is not COMMIT or ABORT (other control types
/// exist only in KRaft's metadata log, never in a topic's partitions).
pub fn parse_control_batch(batch: &DecodedBatch) -> Result<ControlMarker, RecordError> {
    let offset = batch.header.base_offset;
    let invalid = |what: &str| RecordError::InvalidControlBatch {
        offset,
        what: what.to_owned(),
    };
    if !batch.is_control() {
        return Err(invalid("the control attribute is not set"));
    }
    let [record] = batch.records.as_slice() else {
        return Err(invalid(&format!(
            "a transaction marker holds one record, this batch {}",
            batch.records.len()
        )));
    };
    let key = record
        .key
        .as_deref()
        .ok_or_else(|| invalid("the control record key is null"))?;
    let (version, kind) = match key {
        [v0, v1, t0, t1, ..] => (
            i16::from_be_bytes([*v0, *v1]),
            i16::from_be_bytes([*t0, *t1]),
        ),
        _ => return Err(invalid("the control record key is shorter than 4 bytes")),
    };
    if version < 0 {
        return Err(invalid(&format!("control record key version {version}")));
    }
    let kind = match kind {
        0 => ControlKind::Abort,
        1 => ControlKind::Commit,
        other => {
            return Err(RecordError::UnknownControlType {
                offset: record.offset,
                kind: other,
            });
        }
    };
    let value = record
        .value
        .as_deref()
        .ok_or_else(|| invalid("the transaction marker value is null"))?;
    let coordinator_epoch = match value {
        [_, _, e0, e1, e2, e3, ..] => i32::from_be_bytes([*e0, *e1, *e2, *e3]),
        _ => {
            return Err(invalid(
                "the transaction marker value is shorter than 6 bytes",
            ));
        }
    };
    Ok(ControlMarker {
        kind,
        producer_id: batch.header.producer_id,
        producer_epoch: batch.header.producer_epoch,
        offset: record.offset,
        coordinator_epoch,
        timestamp: record.timestamp,
    })
}

/// Encodes a transaction marker batch as a coordinator would write it. Brokers refuse control
/// batches from producers; this is for tests and for tools that write backup files.
pub fn encode_control_batch(
    marker: &ControlMarker,
    partition_leader_epoch: i32,
) -> Result<BytesMut, RecordError> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&marker.kind.type_id().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let record = Record {
        offset: marker.offset,
        timestamp: marker.timestamp,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
    };
    let mut batch = encode_batch(
        &[record],
        &EncodeOptions {
            producer_id: marker.producer_id,
            producer_epoch: marker.producer_epoch,
            transactional: true,
            partition_leader_epoch,
            ..EncodeOptions::default()
        },
    )?;
    // encode_batch writes data batches; set the control bit and re-seal the CRC.
    let at = ATTRIBUTES_OFFSET;
    let attributes = i16::from_be_bytes([batch[at], batch[at + 1]]) | ATTR_CONTROL;
    batch[at..at + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crate::batch::compute_crc(&batch);
    batch[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(batch)
}
