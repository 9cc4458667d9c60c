//! Kafka's size-prefixed framing: encoding a request with its header, and reading one response
//! frame from a peer that may be broken or hostile.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of a frame we allocate ahead of the bytes actually arriving. A peer announcing a
/// huge frame and then sending little can make us hold at most this much per connection.
const READ_CHUNK: usize = 4 * 1024 * 1024;

/// Why a frame could not be read.
#[derive(Debug)]
pub(crate) enum FrameError {
    /// The socket failed or closed.
    Io(std::io::Error),
    /// The peer announced a frame larger than the configured bound (or a negative length).
    TooLarge { announced: u64, max: usize },
    /// The frame cannot even hold a correlation id.
    TooSmall(u32),
}

/// Reads one size-prefixed frame. The length is checked against `max` before anything is
/// allocated, and the body buffer grows only as bytes arrive.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> Result<Bytes, FrameError> {
    let len = reader.read_u32().await.map_err(FrameError::Io)?;
    // The prefix is a signed int32 on the wire: a "negative" length is as invalid as a huge one.
    if len > i32::MAX as u32 || len as usize > max {
        return Err(FrameError::TooLarge {
            announced: u64::from(len),
            max,
        });
    }
    if len < 4 {
        return Err(FrameError::TooSmall(len));
    }
    let len = len as usize;
    let mut buf = BytesMut::with_capacity(len.min(READ_CHUNK));
    while buf.len() < len {
        if buf.len() == buf.capacity() {
            // Grow only once the bytes already allocated have arrived, so memory follows
            // what the peer actually sent rather than what it announced.
            buf.reserve((len - buf.len()).min(buf.len().max(READ_CHUNK)));
        }
        let want = (len - buf.len()).min(buf.capacity() - buf.len());
        let mut limited = (&mut *reader).take(want as u64);
        let n = limited.read_buf(&mut buf).await.map_err(FrameError::Io)?;
        if n == 0 {
            return Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed after {} of {} response bytes",
                    buf.len(),
                    len
                ),
            )));
        }
    }
    Ok(buf.freeze())
}

/// The correlation id at the start of a response frame (every response header starts with it).
pub(crate) fn peek_correlation_id(frame: &Bytes) -> i32 {
    // read_frame guarantees at least 4 bytes.
    i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]])
}

/// Encodes `request` at `version` with its header into one size-prefixed frame.
pub(crate) fn encode_request<R: Request>(
    request: &R,
    version: i16,
    correlation_id: i32,
    client_id: &str,
) -> Result<Bytes, String> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_string(client_id.to_owned())));
    let header_version = R::header_version(version);
    let size = header
        .compute_size(header_version)
        .and_then(|h| Ok(h + request.compute_size(version)?))
        .map_err(|e| format!("cannot encode request: {e}"))?;
    let size32 =
        i32::try_from(size).map_err(|_| format!("request of {size} bytes is too large"))?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size32);
    header
        .encode(&mut buf, header_version)
        .and_then(|_| request.encode(&mut buf, version))
        .map_err(|e| format!("cannot encode request: {e}"))?;
    Ok(buf.freeze())
}

/// Decodes a response frame (without its size prefix) for a request of type `R` sent at
/// `version`. The correlation id has already been matched by the caller.
pub(crate) fn decode_response<R: Request>(
    mut frame: Bytes,
    version: i16,
) -> Result<R::Response, String> {
    let header_version = <R::Response as HeaderVersion>::header_version(version);
    ResponseHeader::decode(&mut frame, header_version)
        .map_err(|e| format!("malformed response header: {e}"))?;
    let response = <R::Response as Decodable>::decode(&mut frame, version)
        .map_err(|e| format!("malformed response body: {e}"))?;
    if frame.has_remaining() {
        // Newer brokers may append fields we do not know only as tagged fields, which the
        // decoder consumes; leftover bytes mean we and the peer disagree on the layout.
        tracing::debug!(
            remaining = frame.remaining(),
            "response had trailing bytes after decoding"
        );
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::ApiVersionsRequest;

    #[tokio::test]
    async fn rejects_oversized_and_negative_lengths_before_allocating() {
        let mut two_gib: &[u8] = &[0x80, 0, 0, 0, 1, 2, 3];
        match read_frame(&mut two_gib, 1 << 20).await {
            Err(FrameError::TooLarge { announced, .. }) => assert_eq!(announced, 1 << 31),
            other => panic!("unexpected {other:?}"),
        }
        let mut big: &[u8] = &[0x10, 0, 0, 0];
        assert!(matches!(
            read_frame(&mut big, 1 << 20).await,
            Err(FrameError::TooLarge { .. })
        ));
        let mut tiny: &[u8] = &[0, 0, 0, 2, 0, 0];
        assert!(matches!(
            read_frame(&mut tiny, 1 << 20).await,
            Err(FrameError::TooSmall(2))
        ));
    }

    #[tokio::test]
    async fn truncated_frame_is_an_eof_error() {
        let mut short: &[u8] = &[0, 0, 0, 10, 1, 2, 3];
        match read_frame(&mut short, 1 << 20).await {
            Err(FrameError::Io(e)) => {
                assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
                assert!(e.to_string().contains("3 of 10"), "{e}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn reads_a_whole_frame() {
        let mut ok: &[u8] = &[0, 0, 0, 5, 0, 0, 0, 7, 9, 0xff];
        let frame = read_frame(&mut ok, 1 << 20).await.unwrap();
        assert_eq!(&frame[..], &[0, 0, 0, 7, 9]);
        assert_eq!(peek_correlation_id(&frame), 7);
        assert_eq!(ok, &[0xff]);
    }

    #[test]
    fn encodes_size_prefix_and_header() {
        let frame = encode_request(&ApiVersionsRequest::default(), 0, 42, "kb").unwrap();
        let len = i32::from_be_bytes(frame[..4].try_into().unwrap()) as usize;
        assert_eq!(len, frame.len() - 4);
        // api key 18, version 0, correlation id 42
        assert_eq!(&frame[4..12], &[0, 18, 0, 0, 0, 0, 0, 42]);
    }
}
