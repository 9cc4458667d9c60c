//! Transaction markers and the committed-data filter, with both truth sources: the broker's
//! aborted-transaction list (a) and the markers in the log (b), which must agree.

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{BASE_TS, Rng};
use kafka_records::txn::{AbortedTxnFilter, BatchSummary, Decision, MarkerIndex, OpenTransaction};
use kafka_records::{
    ControlKind, ControlMarker, DecodeLimits, EncodeOptions, Record, RecordError, decode_batch,
    encode_batch, encode_control_batch, parse_control_batch,
};

fn marker(kind: ControlKind, producer_id: i64, offset: i64) -> ControlMarker {
    ControlMarker {
        kind,
        producer_id,
        producer_epoch: 4,
        offset,
        coordinator_epoch: 17,
        timestamp: BASE_TS + offset,
    }
}

#[test]
fn control_batches_round_trip_and_are_validated() {
    for kind in [ControlKind::Commit, ControlKind::Abort] {
        let m = marker(kind, 99, 1234);
        let bytes = encode_control_batch(&m, 5).unwrap().freeze();
        let decoded = decode_batch(&bytes, &DecodeLimits::default()).unwrap();
        assert!(decoded.is_control() && decoded.is_transactional());
        assert_eq!(parse_control_batch(&decoded).unwrap(), m);
        // The wire layout Kafka's ControlRecordType and EndTransactionMarker read.
        let r = &decoded.records[0];
        assert_eq!(r.key.as_deref(), Some(&[0, 0, 0, kind.type_id() as u8][..]));
        assert_eq!(r.value.as_deref(), Some(&[0, 0, 0, 0, 0, 17][..]));
        let summary = BatchSummary::read(&bytes, &DecodeLimits::default()).unwrap();
        assert_eq!(summary.marker, Some(m));
    }

    let control = |key: Option<&[u8]>, value: Option<&[u8]>, records: usize| {
        let mut batch = decode_batch(
            &encode_control_batch(&marker(ControlKind::Commit, 1, 0), 0)
                .unwrap()
                .freeze(),
            &DecodeLimits::default(),
        )
        .unwrap();
        batch.records[0].key = key.map(Bytes::copy_from_slice);
        batch.records[0].value = value.map(Bytes::copy_from_slice);
        let extra = batch.records[0].clone();
        batch
            .records
            .extend(std::iter::repeat_n(extra, records - 1));
        parse_control_batch(&batch)
    };
    let value = [0u8, 0, 0, 0, 0, 1];
    assert!(control(Some(&[0, 0, 0, 1]), Some(&value), 1).is_ok());
    // A newer key/value version with extra bytes is read by its v0 prefix, as Kafka does.
    assert!(control(Some(&[0, 1, 0, 1, 9]), Some(&[0, 1, 0, 0, 0, 1, 7]), 1).is_ok());
    for (key, value, records) in [
        (None, Some(&value[..]), 1),
        (Some(&[0u8, 0, 0][..]), Some(&value[..]), 1),
        (Some(&[0xff, 0xff, 0, 1][..]), Some(&value[..]), 1),
        (Some(&[0, 0, 0, 1][..]), None, 1),
        (Some(&[0, 0, 0, 1][..]), Some(&value[..5]), 1),
        (Some(&[0, 0, 0, 1][..]), Some(&value[..]), 2),
    ] {
        assert!(
            matches!(
                control(key, value, records),
                Err(RecordError::InvalidControlBatch { .. })
            ),
            "{key:?} {value:?} {records}"
        );
    }
    assert!(matches!(
        control(Some(&[0, 0, 0, 3]), Some(&value), 1),
        Err(RecordError::UnknownControlType { kind: 3, .. })
    ));
    let data = encode_batch(
        &[Record {
            offset: 0,
            timestamp: 0,
            key: None,
            value: None,
            headers: vec![],
        }],
        &EncodeOptions::default(),
    )
    .unwrap()
    .freeze();
    let data = decode_batch(&data, &DecodeLimits::default()).unwrap();
    assert!(matches!(
        parse_control_batch(&data),
        Err(RecordError::InvalidControlBatch { .. })
    ));
}

/// A synthetic partition log with known ground truth.
struct Log {
    batches: Vec<Bytes>,
    /// Per batch: what a read_committed consumer does with it.
    truth: Vec<Decision>,
    /// What a broker would send in a read_committed Fetch: (producer id, first offset).
    aborted: Vec<(i64, i64)>,
    next_offset: i64,
}

impl Log {
    fn new() -> Self {
        Self {
            batches: vec![],
            truth: vec![],
            aborted: vec![],
            next_offset: 0,
        }
    }

    /// A data batch of `n` records; `producer_id` -1 for a plain producer.
    fn data(&mut self, producer_id: i64, transactional: bool, n: i64) -> usize {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                offset: self.next_offset + i,
                timestamp: BASE_TS,
                key: Some(Bytes::from(format!(
                    "p{producer_id}-{}",
                    self.next_offset + i
                ))),
                value: Some(Bytes::from_static(b"v")),
                headers: vec![],
            })
            .collect();
        let batch = encode_batch(
            &records,
            &EncodeOptions {
                producer_id,
                producer_epoch: if producer_id >= 0 { 4 } else { -1 },
                transactional,
                ..EncodeOptions::default()
            },
        )
        .unwrap();
        self.next_offset += n;
        self.batches.push(batch.freeze());
        self.truth.push(if transactional {
            Decision::Undecided
        } else {
            Decision::Keep
        });
        self.batches.len() - 1
    }

    /// Ends `producer_id`'s transaction whose batches are `members`.
    fn end(&mut self, producer_id: i64, kind: ControlKind, members: &[usize]) {
        let m = marker(kind, producer_id, self.next_offset);
        self.next_offset += 1;
        self.batches
            .push(encode_control_batch(&m, 0).unwrap().freeze());
        self.truth.push(Decision::Control);
        let decided = match kind {
            ControlKind::Commit => Decision::Keep,
            ControlKind::Abort => Decision::Aborted,
        };
        for &i in members {
            self.truth[i] = decided;
        }
        if kind == ControlKind::Abort
            && let Some(&first) = members.first()
        {
            let first_offset = kafka_records::batch::verify(&self.batches[first])
                .unwrap()
                .base_offset;
            self.aborted.push((producer_id, first_offset));
        }
    }

    fn summaries(&self) -> Vec<BatchSummary> {
        self.batches
            .iter()
            .map(|b| BatchSummary::read(b, &DecodeLimits::default()).unwrap())
            .collect()
    }
}

/// Truth source (b): both passes over the whole log.
fn by_markers(log: &Log) -> (Vec<Decision>, Vec<OpenTransaction>) {
    let summaries = log.summaries();
    let mut index = MarkerIndex::new();
    for s in &summaries {
        index.observe(s).unwrap();
    }
    let open = index.open_transactions();
    let mut filter = index.into_filter();
    let decisions = summaries
        .iter()
        .map(|s| filter.decide(&s.header).unwrap())
        .collect();
    assert_eq!(filter.remaining_markers(), 0, "pass 2 drops passed markers");
    (decisions, open)
}

/// Truth source (a): one filter per simulated Fetch response of `batches_per_fetch` batches,
/// each with the aborted transactions the broker would list for that range.
fn by_aborted_list(log: &Log, upto: usize, batches_per_fetch: usize) -> Vec<Decision> {
    let summaries = log.summaries();
    let mut decisions = Vec::new();
    for chunk in summaries[..upto].chunks(batches_per_fetch) {
        let (from, to) = (
            chunk[0].header.base_offset,
            chunk[chunk.len() - 1].header.last_offset(),
        );
        // The broker lists aborted transactions that overlap the fetched range.
        let listed = log.aborted.iter().copied().filter(|&(pid, first)| {
            let abort_marker = summaries
                .iter()
                .filter_map(|s| s.marker)
                .find(|m| m.producer_id == pid && m.offset > first)
                .map(|m| m.offset)
                .unwrap();
            first <= to && abort_marker >= from
        });
        let mut filter = AbortedTxnFilter::new(listed);
        decisions.extend(chunk.iter().map(|s| filter.decide(s).unwrap()));
    }
    decisions
}

#[test]
fn interleaved_producers_commits_aborts_and_an_open_transaction() {
    let mut log = Log::new();
    log.data(-1, false, 2); // plain producer
    let a1 = log.data(1, true, 2);
    let b1 = log.data(2, true, 1);
    log.data(-1, false, 1);
    let a2 = log.data(1, true, 3);
    let b2 = log.data(2, true, 1);
    log.end(1, ControlKind::Commit, &[a1, a2]);
    let c1 = log.data(1, true, 1);
    log.end(2, ControlKind::Abort, &[b1, b2]);
    log.data(3, false, 2); // idempotent, not transactional
    let c2 = log.data(1, true, 1);
    log.end(1, ControlKind::Abort, &[c1, c2]);
    let d1 = log.data(2, true, 2);
    let e1 = log.data(1, true, 1); // never ended: open at the end
    log.end(2, ControlKind::Commit, &[d1]);
    log.data(1, true, 1); // still transaction E
    log.data(-1, false, 1);

    let (decisions, open) = by_markers(&log);
    assert_eq!(decisions, log.truth);
    let e_offset = kafka_records::batch::verify(&log.batches[e1])
        .unwrap()
        .base_offset;
    assert_eq!(
        open,
        [OpenTransaction {
            first_offset: e_offset,
            producer_id: 1
        }]
    );
    assert_eq!(
        decisions
            .iter()
            .filter(|d| **d == Decision::Undecided)
            .count(),
        2
    );

    // A read_committed Fetch stops at the last stable offset: the first open transaction.
    for per_fetch in [1, 2, 3, 5, e1] {
        assert_eq!(
            by_aborted_list(&log, e1, per_fetch),
            log.truth[..e1],
            "{per_fetch} batches per fetch"
        );
    }

    // The data a restore keeps: exactly the committed and non-transactional records.
    let kept: Vec<String> = log
        .batches
        .iter()
        .zip(&decisions)
        .filter(|(_, d)| **d == Decision::Keep)
        .flat_map(|(b, _)| decode_batch(b, &DecodeLimits::default()).unwrap().records)
        .map(|r| String::from_utf8(r.key.unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(
        kept,
        [
            "p-1-0", "p-1-1", "p1-2", "p1-3", "p-1-5", "p1-6", "p1-7", "p1-8", "p3-13", "p3-14",
            "p2-17", "p2-18", "p-1-22"
        ]
    );
}

#[test]
fn random_logs_agree_with_ground_truth_under_both_sources() {
    let mut rng = Rng::new(11);
    for round in 0..300 {
        let mut log = Log::new();
        // Per producer: the batches of its open transaction.
        let mut open: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
        for _ in 0..rng.below(60) {
            let producer = rng.below(5) as i64; // 0 = plain, 1..4 transactional
            if producer == 0 {
                log.data(-1, false, 1 + rng.below(3) as i64);
            } else if rng.below(4) == 0 && open.contains_key(&producer) {
                let members = open.remove(&producer).unwrap();
                let kind = if rng.below(2) == 0 {
                    ControlKind::Commit
                } else {
                    ControlKind::Abort
                };
                log.end(producer, kind, &members);
            } else {
                let i = log.data(producer, true, 1 + rng.below(3) as i64);
                open.entry(producer).or_default().push(i);
            }
        }
        let (decisions, open_txns) = by_markers(&log);
        assert_eq!(decisions, log.truth, "round {round}");
        let mut want_open: Vec<(i64, i64)> = open
            .iter()
            .map(|(pid, members)| {
                let h = kafka_records::batch::verify(&log.batches[members[0]]).unwrap();
                (h.base_offset, *pid)
            })
            .collect();
        want_open.sort();
        let got_open: Vec<(i64, i64)> = open_txns
            .iter()
            .map(|o| (o.first_offset, o.producer_id))
            .collect();
        assert_eq!(got_open, want_open, "round {round}");
        // Source (a) up to the last stable offset.
        let lso = open
            .values()
            .map(|m| m[0])
            .min()
            .unwrap_or(log.batches.len());
        for per_fetch in [1, 4, 1000] {
            assert_eq!(
                by_aborted_list(&log, lso, per_fetch),
                log.truth[..lso],
                "round {round}, {per_fetch} per fetch"
            );
        }
    }
}

#[test]
fn batches_out_of_order_are_refused() {
    let mut log = Log::new();
    log.data(-1, false, 2);
    log.data(-1, false, 2);
    let s = log.summaries();
    let mut index = MarkerIndex::new();
    index.observe(&s[1]).unwrap();
    assert!(matches!(
        index.observe(&s[0]),
        Err(RecordError::OutOfOrder {
            offset: 0,
            previous: 3
        })
    ));
    let mut filter = AbortedTxnFilter::new([]);
    filter.decide(&s[0]).unwrap();
    assert!(filter.decide(&s[0]).is_err());
}

/// Markers known from a manifest (recorded apart, data batches never observed) decide every
/// batch as reading the log would; a listed marker that the log contradicts (an ABORT where the
/// log holds a COMMIT) or a marker missing from the list stops pass 2 at that control batch.
#[test]
fn markers_recorded_apart_decide_the_same_and_a_wrong_list_is_refused() {
    let mut log = Log::new();
    let a = log.data(1, true, 2);
    log.data(-1, false, 1);
    let b = log.data(2, true, 1);
    log.end(1, ControlKind::Commit, &[a]);
    let c = log.data(2, true, 2);
    log.end(2, ControlKind::Abort, &[b, c]);
    log.data(-1, false, 1);
    let summaries = log.summaries();
    let listed: Vec<(i64, i64, ControlKind)> = summaries
        .iter()
        .filter_map(|s| s.marker.map(|m| (m.offset, m.producer_id, m.kind)))
        .collect();
    assert_eq!(listed.len(), 2);

    let decide_with = |markers: &[(i64, i64, ControlKind)]| {
        let mut index = MarkerIndex::new();
        for &(offset, pid, kind) in markers {
            index.record_marker(offset, pid, kind).unwrap();
        }
        let mut filter = index.into_filter();
        summaries
            .iter()
            .map(|s| filter.decide_summary(s))
            .collect::<Result<Vec<Decision>, RecordError>>()
    };
    assert_eq!(decide_with(&listed).unwrap(), log.truth);

    // The COMMIT listed as an ABORT: it would drop committed data, and is refused.
    let mut forged = listed.clone();
    forged[0].2 = ControlKind::Abort;
    let err = decide_with(&forged).unwrap_err();
    assert!(
        matches!(err, RecordError::InvalidControlBatch { offset, .. } if offset == listed[0].0),
        "{err}"
    );
    // A marker left out of the list.
    assert!(decide_with(&listed[1..]).is_err());
    // Listed out of order.
    let mut index = MarkerIndex::new();
    index
        .record_marker(listed[1].0, 2, ControlKind::Abort)
        .unwrap();
    assert!(
        index
            .record_marker(listed[0].0, 1, ControlKind::Commit)
            .is_err()
    );
}
