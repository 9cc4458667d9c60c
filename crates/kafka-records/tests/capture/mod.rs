//! A TCP proxy between a Kafka client and the single test broker that records the record
//! batches of every Produce request exactly as the client sent them.
//!
//! Needed because the test broker (nisshi) stores records one by one and re-encodes them on
//! Fetch, uncompressed: fetched batches are the broker's bytes, not the producer's. To decode
//! what librdkafka itself wrote (its gzip, snappy, lz4 and zstd), the bytes are taken off the
//! wire on the way in. Metadata and FindCoordinator answers are rewritten to point at the
//! proxy, so that every connection of the client passes through it. It serves only the
//! loopback client of one test and ends with the test's runtime.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorResponse, MetadataResponse, ProduceRequest, RequestHeader,
    ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The records of one partition in one Produce request.
#[derive(Debug, Clone)]
pub struct Produced {
    pub topic: String,
    pub records: Bytes,
}

pub struct CaptureProxy {
    pub addr: SocketAddr,
    captured: Arc<Mutex<Vec<Produced>>>,
}

impl CaptureProxy {
    pub async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let captured: Arc<Mutex<Vec<Produced>>> = Arc::default();
        let sink = Arc::clone(&captured);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, sink) = (upstream.clone(), Arc::clone(&sink));
                tokio::spawn(async move {
                    if let Err(e) = serve(client, &upstream, addr, sink).await {
                        eprintln!("capture proxy connection ended: {e}");
                    }
                });
            }
        });
        Self { addr, captured }
    }

    /// Everything captured so far, in arrival order.
    pub fn produced(&self) -> Vec<Produced> {
        self.captured.lock().unwrap().clone()
    }
}

type Inflight = Arc<Mutex<HashMap<i32, (i16, i16)>>>;

async fn read_frame(r: &mut (impl AsyncReadExt + Unpin)) -> std::io::Result<Option<Bytes>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    assert!(len < 64 * 1024 * 1024, "frame of {len} bytes");
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload).await?;
    Ok(Some(Bytes::from(payload)))
}

async fn write_frame(w: &mut (impl AsyncWriteExt + Unpin), payload: &[u8]) -> std::io::Result<()> {
    w.write_all(&(payload.len() as u32).to_be_bytes()).await?;
    w.write_all(payload).await
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn serve(
    client: TcpStream,
    upstream: &str,
    me: SocketAddr,
    captured: Arc<Mutex<Vec<Produced>>>,
) -> Result<(), BoxError> {
    let server = TcpStream::connect(upstream).await?;
    let (mut client_r, mut client_w) = client.into_split();
    let (mut server_r, mut server_w) = server.into_split();
    let inflight: Inflight = Arc::default();

    let requests = {
        let inflight = Arc::clone(&inflight);
        async move {
            while let Some(frame) = read_frame(&mut client_r).await? {
                let key = i16::from_be_bytes([frame[0], frame[1]]);
                let version = i16::from_be_bytes([frame[2], frame[3]]);
                let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                inflight.lock().unwrap().insert(correlation, (key, version));
                if key == ApiKey::Produce as i16 {
                    let mut buf = frame.clone();
                    RequestHeader::decode(
                        &mut buf,
                        ApiKey::Produce.request_header_version(version),
                    )?;
                    let request = ProduceRequest::decode(&mut buf, version)?;
                    let mut sink = captured.lock().unwrap();
                    for topic in request.topic_data {
                        for partition in topic.partition_data {
                            if let Some(records) = partition.records {
                                sink.push(Produced {
                                    topic: topic.name.0.to_string(),
                                    records,
                                });
                            }
                        }
                    }
                }
                write_frame(&mut server_w, &frame).await?;
            }
            Ok::<(), BoxError>(())
        }
    };
    let responses = async move {
        while let Some(frame) = read_frame(&mut server_r).await? {
            let correlation = i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let request = inflight.lock().unwrap().remove(&correlation);
            let frame = match request {
                Some((key, version)) if key == ApiKey::Metadata as i16 => {
                    rewrite::<MetadataResponse>(ApiKey::Metadata, version, frame, |r| {
                        for b in &mut r.brokers {
                            b.host = StrBytes::from_string(me.ip().to_string());
                            b.port = i32::from(me.port());
                        }
                    })?
                }
                Some((key, version)) if key == ApiKey::FindCoordinator as i16 => {
                    rewrite::<FindCoordinatorResponse>(
                        ApiKey::FindCoordinator,
                        version,
                        frame,
                        |r| {
                            if r.port > 0 {
                                r.host = StrBytes::from_string(me.ip().to_string());
                                r.port = i32::from(me.port());
                            }
                            for c in &mut r.coordinators {
                                c.host = StrBytes::from_string(me.ip().to_string());
                                c.port = i32::from(me.port());
                            }
                        },
                    )?
                }
                _ => frame,
            };
            write_frame(&mut client_w, &frame).await?;
        }
        Ok::<(), BoxError>(())
    };
    tokio::select! {
        r = requests => r,
        r = responses => r,
    }
}

fn rewrite<R: Decodable + Encodable>(
    key: ApiKey,
    version: i16,
    frame: Bytes,
    edit: impl FnOnce(&mut R),
) -> Result<Bytes, BoxError> {
    let header_version = key.response_header_version(version);
    let mut buf = frame;
    let header = ResponseHeader::decode(&mut buf, header_version)?;
    let mut response = R::decode(&mut buf, version)?;
    edit(&mut response);
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version)?;
    response.encode(&mut out, version)?;
    Ok(out.freeze())
}
