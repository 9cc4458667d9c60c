//! encode_batch → decode_batch for every codec, and cross-checks against kafka-protocol's
//! independent encoder and decoder.

mod common;

use bytes::{Bytes, BytesMut};
use common::{BASE_TS, DAY_MS, Rng, tricky_records};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder,
    RecordEncodeOptions, TimestampType as KpTimestampType,
};
use kafka_records::batch::{self, BATCH_HEADER_LEN};
use kafka_records::{
    Compression, DecodeLimits, EncodeOptions, Header, Record, RecordError, TimestampType,
    decode_batch, encode_batch,
};

fn decode(batch: BytesMut) -> kafka_records::DecodedBatch {
    decode_batch(&batch.freeze(), &DecodeLimits::default()).unwrap()
}

#[test]
fn every_codec_round_trips_every_detail() {
    let records = tricky_records(1000);
    for codec in Compression::ALL {
        let opts = EncodeOptions {
            compression: codec,
            producer_id: 77,
            producer_epoch: 3,
            base_sequence: 41,
            transactional: true,
            partition_leader_epoch: 9,
            ..EncodeOptions::default()
        };
        let encoded = encode_batch(&records, &opts).unwrap();
        let header = batch::verify(&encoded).unwrap();
        assert_eq!(header.base_offset, 1000, "{codec}");
        assert_eq!(header.last_offset_delta, records.len() as i32 - 1);
        assert_eq!(header.record_count, records.len() as i32);
        // Kafka's producer takes the first record's timestamp as the base.
        assert_eq!(header.base_timestamp, BASE_TS);
        assert_eq!(header.max_timestamp, BASE_TS + 30 * DAY_MS);
        assert_eq!(
            (
                header.producer_id,
                header.producer_epoch,
                header.base_sequence
            ),
            (77, 3, 41)
        );
        assert_eq!(header.partition_leader_epoch, 9);
        assert!(header.is_transactional() && !header.is_control());

        let decoded = decode(encoded);
        assert_eq!(decoded.compression, codec);
        assert_eq!(decoded.timestamp_type, TimestampType::CreateTime);
        assert_eq!(decoded.records, records, "{codec}");
        let raw: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
        assert_eq!(decoded.raw_timestamps, raw);
        // Spot checks that would catch a decoder that confuses null and empty.
        assert_eq!(decoded.records[1].key, None);
        assert_eq!(decoded.records[2].key.as_deref(), Some(&b""[..]));
        assert_eq!(decoded.records[3].value, None);
        assert_eq!(decoded.records[4].value.as_deref(), Some(&b""[..]));
        let dups: Vec<Option<&[u8]>> = decoded.records[6]
            .headers
            .iter()
            .filter(|h| &h.key[..] == b"dup")
            .map(|h| h.value.as_deref())
            .collect();
        assert_eq!(dups, [Some(&b"first"[..]), None, Some(&b"third"[..])]);
    }
}

#[test]
fn uncompressed_records_are_slices_of_the_batch() {
    let batch = encode_batch(&tricky_records(0), &EncodeOptions::default())
        .unwrap()
        .freeze();
    let decoded = decode_batch(&batch, &DecodeLimits::default()).unwrap();
    let key = decoded.records[0].key.clone().unwrap();
    let range = batch.as_ptr() as usize..batch.as_ptr() as usize + batch.len();
    assert!(range.contains(&(key.as_ptr() as usize)), "key was copied");
}

#[test]
fn log_append_time_batches_expose_append_and_create_times() {
    let records = tricky_records(5);
    for codec in [Compression::None, Compression::Zstd] {
        let mut encoded = encode_batch(
            &records,
            &EncodeOptions {
                compression: codec,
                ..EncodeOptions::default()
            },
        )
        .unwrap();
        // What a broker does to a batch on a LogAppendTime topic: set the attribute and
        // overwrite maxTimestamp with its clock, leaving record deltas alone.
        let append_time = BASE_TS + 100 * DAY_MS;
        let attributes = i16::from_be_bytes([encoded[21], encoded[22]]) | 0x08;
        encoded[21..23].copy_from_slice(&attributes.to_be_bytes());
        encoded[35..43].copy_from_slice(&append_time.to_be_bytes());
        let crc = batch::compute_crc(&encoded);
        encoded[17..21].copy_from_slice(&crc.to_be_bytes());

        let decoded = decode(encoded);
        assert_eq!(decoded.timestamp_type, TimestampType::LogAppendTime);
        assert!(decoded.records.iter().all(|r| r.timestamp == append_time));
        let create: Vec<i64> = records.iter().map(|r| r.timestamp).collect();
        assert_eq!(decoded.raw_timestamps, create, "{codec}");
    }
    // Encoding as LogAppendTime keeps what consumers see.
    let mut same_time = tricky_records(0);
    for r in &mut same_time {
        r.timestamp = BASE_TS;
    }
    let decoded = decode(
        encode_batch(
            &same_time,
            &EncodeOptions {
                timestamp_type: TimestampType::LogAppendTime,
                ..EncodeOptions::default()
            },
        )
        .unwrap(),
    );
    assert_eq!(decoded.timestamp_type, TimestampType::LogAppendTime);
    assert_eq!(decoded.records, same_time);
}

#[test]
fn offset_gaps_survive_and_bad_offsets_are_refused() {
    // Compacted topics leave gaps; a stored batch keeps them.
    let mut records = tricky_records(0);
    for (i, r) in records.iter_mut().enumerate() {
        r.offset = 50 + 3 * i as i64;
    }
    let encoded = encode_batch(&records, &EncodeOptions::default()).unwrap();
    assert_eq!(batch::verify(&encoded).unwrap().last_offset_delta, 18);
    assert_eq!(decode(encoded).records, records);

    let mut backwards = tricky_records(0);
    backwards.swap(1, 2);
    assert!(matches!(
        encode_batch(&backwards, &EncodeOptions::default()),
        Err(RecordError::Encode { .. })
    ));
    let mut far = tricky_records(0);
    far[1].offset = i64::from(i32::MAX) + 1;
    assert!(encode_batch(&far, &EncodeOptions::default()).is_err());
    assert!(encode_batch(&[], &EncodeOptions::default()).is_err());
}

#[test]
fn large_and_random_records_round_trip_through_every_codec() {
    let mut rng = Rng::new(7);
    let mut records = Vec::new();
    for i in 0..300 {
        let len = if i % 50 == 0 { 70_000 } else { rng.below(400) };
        let headers = (0..rng.below(4))
            .map(|_| Header {
                key: Bytes::from(rng.some_bytes(8)),
                value: (rng.below(3) > 0).then(|| Bytes::from(rng.some_bytes(20))),
            })
            .collect();
        records.push(Record {
            offset: i,
            timestamp: BASE_TS + (rng.next_u64() % (60 * DAY_MS as u64)) as i64 - 30 * DAY_MS,
            key: (rng.below(4) > 0).then(|| Bytes::from(rng.some_bytes(30))),
            value: (rng.below(10) > 0).then(|| Bytes::from(rng.bytes(len))),
            headers,
        });
    }
    for codec in Compression::ALL {
        let opts = EncodeOptions {
            compression: codec,
            ..EncodeOptions::default()
        };
        let decoded = decode(encode_batch(&records, &opts).unwrap());
        assert_eq!(decoded.records, records, "{codec}");
    }
}

fn kp_compression(codec: Compression) -> KpCompression {
    match codec {
        Compression::None => KpCompression::None,
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
    }
}

/// kafka-protocol keeps headers in a map, so these records have unique header keys.
fn map_friendly_records() -> Vec<Record> {
    tricky_records(200)
        .into_iter()
        .map(|mut r| {
            r.headers.retain(|h| &h.key[..] != b"dup");
            r
        })
        .collect()
}

#[test]
fn batches_encoded_by_kafka_protocol_decode_identically() {
    let records = map_friendly_records();
    for codec in Compression::ALL {
        let kp: Vec<KpRecord> = records
            .iter()
            .enumerate()
            .map(|(i, r)| KpRecord {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: 12,
                producer_epoch: 1,
                timestamp_type: KpTimestampType::Creation,
                offset: r.offset,
                sequence: i as i32,
                timestamp: r.timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            StrBytes::from_utf8(h.key.clone())
                                .unwrap_or_else(|_| StrBytes::from_static_str("x")),
                            h.value.clone(),
                        )
                    })
                    .collect(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &kp,
            &RecordEncodeOptions {
                version: 2,
                compression: kp_compression(codec),
            },
        )
        .unwrap();
        let decoded = decode(buf);
        assert_eq!(decoded.compression, codec);
        assert_eq!(decoded.header.producer_id, 12);
        let expected: Vec<Record> = records
            .iter()
            .map(|r| Record {
                headers: r
                    .headers
                    .iter()
                    .map(|h| Header {
                        key: if std::str::from_utf8(&h.key).is_ok() {
                            h.key.clone()
                        } else {
                            Bytes::from_static(b"x")
                        },
                        value: h.value.clone(),
                    })
                    .collect(),
                ..r.clone()
            })
            .collect();
        assert_eq!(decoded.records, expected, "{codec}");
    }
}

#[test]
fn batches_we_encode_decode_identically_in_kafka_protocol() {
    let records: Vec<Record> = map_friendly_records()
        .into_iter()
        .map(|mut r| {
            r.headers.retain(|h| std::str::from_utf8(&h.key).is_ok());
            r
        })
        .collect();
    for codec in Compression::ALL {
        let encoded = encode_batch(
            &records,
            &EncodeOptions {
                compression: codec,
                ..EncodeOptions::default()
            },
        )
        .unwrap();
        let set = RecordBatchDecoder::decode(&mut encoded.freeze()).unwrap();
        assert_eq!(set.records.len(), records.len(), "{codec}");
        for (kp, ours) in set.records.iter().zip(&records) {
            assert_eq!(kp.offset, ours.offset, "{codec}");
            assert_eq!(kp.timestamp, ours.timestamp, "{codec}");
            assert_eq!(kp.key, ours.key, "{codec}");
            assert_eq!(kp.value, ours.value, "{codec}");
            let headers: Vec<(&[u8], Option<&[u8]>)> = kp
                .headers
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_deref()))
                .collect();
            let want: Vec<(&[u8], Option<&[u8]>)> = ours
                .headers
                .iter()
                .map(|h| (&h.key[..], h.value.as_deref()))
                .collect();
            assert_eq!(headers, want, "{codec}");
        }
    }
}

#[test]
fn a_hand_built_batch_decodes_field_by_field() {
    // One record written byte by byte from the spec, independent of our encoder.
    let mut rec = vec![0u8]; // attributes
    rec.push(0x03); // timestampDelta -2 (zig-zag 3)
    rec.push(0x00); // offsetDelta 0
    rec.push(0x01); // key null (-1)
    rec.extend_from_slice(&[0x04, b'h', b'i']); // value "hi"
    rec.push(0x04); // 2 headers
    rec.extend_from_slice(&[0x02, b'k', 0x01]); // "k" => null
    rec.extend_from_slice(&[0x02, b'k', 0x00]); // "k" => ""
    let mut section = vec![(rec.len() as u8) << 1];
    section.extend_from_slice(&rec);
    let mut b = Vec::new();
    b.extend_from_slice(&42i64.to_be_bytes());
    b.extend_from_slice(&((BATCH_HEADER_LEN - 12 + section.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]);
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes());
    b.extend_from_slice(&1000i64.to_be_bytes());
    b.extend_from_slice(&1000i64.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes());
    b.extend_from_slice(&(-1i16).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes());
    b.extend_from_slice(&section);
    let crc = batch::compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    let decoded = decode_batch(&Bytes::from(b), &DecodeLimits::default()).unwrap();
    assert_eq!(
        decoded.records,
        [Record {
            offset: 42,
            timestamp: 998,
            key: None,
            value: Some(Bytes::from_static(b"hi")),
            headers: vec![
                Header::new("k", None::<Bytes>),
                Header::new("k", Some(Bytes::new())),
            ],
        }]
    );
}
