//! The segment cipher: AES-256-GCM over a segment's chunks in the STREAM construction.
//!
//! - **Key**: HKDF-SHA256(salt = the segment's random salt, key material = the run's data
//!   key, info = `"kafka-backup segment key v1"` ‖ the segment context). Every segment has
//!   its own key, so a counter nonce never repeats under a key.
//! - **Segment context**: SHA-256 of the segment's identity (backup id, topic, topic id,
//!   partition, start offset, chunk codec), each field length-prefixed. It is both in the key
//!   derivation and in every block's associated data.
//! - **Nonce** of block `i`: 7 zero bytes ‖ `i` (u32, big-endian) ‖ final flag. Chunks are
//!   blocks 0, 1, … with the flag 0; the trailer is the final block, with counter
//!   `u32::MAX` and the flag 1 (a fixed position, so that it can be decrypted from the
//!   object's tail alone, e.g. by a ranged GET). Reordering or repeating chunks, moving one
//!   into another segment, or presenting a chunk as the trailer fails authentication; the
//!   trailer records how many chunks there are, so dropping chunks is caught when the reader
//!   compares its count, and cutting the object loses the trailer.
//! - **Associated data**: the context ‖ block index (u64) ‖ for a chunk, its raw (decoded)
//!   length; for the trailer, the SHA-256 of the header as finally written (the header is
//!   stored in the clear and may be rewritten at the end with aborted transactions, so it is
//!   authenticated once, by the last block).
//!
//! The end offset is inside the (authenticated) trailer, which readers compare with the
//! object's name: the whole offset range is bound.

use ring::aead::{Aad, Nonce, Tag};

use super::{CryptoError, DataKey, KEY_LEN, TAG_LEN, aead_key, derive, length_prefixed};

/// Most blocks (chunks + trailer) a segment can have under one key.
pub const MAX_BLOCKS: u64 = u32::MAX as u64;
/// The trailer's block counter.
const TRAILER_INDEX: u64 = u32::MAX as u64;

/// Who a segment is: the fields bound into its key and every block.
#[derive(Debug, Clone, Copy)]
pub struct SegmentIdentity<'a> {
    /// Backup id.
    pub backup_id: &'a str,
    /// Topic name.
    pub topic: &'a str,
    /// Topic id.
    pub topic_id: &'a str,
    /// Partition.
    pub partition: i32,
    /// Coverage start.
    pub start_offset: i64,
    /// Chunk codec name (`none`, `zstd`, `lz4`).
    pub compression: &'a str,
}

impl SegmentIdentity<'_> {
    fn context(&self) -> [u8; 32] {
        let mut buf = Vec::with_capacity(128);
        length_prefixed(&mut buf, b"kafka-backup segment context v1");
        length_prefixed(&mut buf, self.backup_id.as_bytes());
        length_prefixed(&mut buf, self.topic.as_bytes());
        length_prefixed(&mut buf, self.topic_id.as_bytes());
        buf.extend_from_slice(&self.partition.to_be_bytes());
        buf.extend_from_slice(&self.start_offset.to_be_bytes());
        length_prefixed(&mut buf, self.compression.as_bytes());
        let digest = ring::digest::digest(&ring::digest::SHA256, &buf);
        digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
    }
}

/// Encrypts or decrypts the blocks of one segment.
pub struct SegmentCipher {
    key: ring::aead::LessSafeKey,
    context: [u8; 32],
}

impl std::fmt::Debug for SegmentCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SegmentCipher(***)")
    }
}

impl SegmentCipher {
    /// The cipher of the segment `identity` whose header carries `salt`.
    pub fn new(data_key: &DataKey, salt: &[u8; KEY_LEN], identity: &SegmentIdentity<'_>) -> Self {
        let context = identity.context();
        let key = derive(
            data_key,
            salt,
            &[b"kafka-backup segment key v1", context.as_slice()],
        );
        Self {
            key: aead_key(&key),
            context,
        }
    }

    /// Encrypts a chunk in place (`data` is its stored, i.e. compressed, content) and returns
    /// the tag to append after it.
    pub fn seal_chunk(
        &self,
        index: u64,
        raw_len: u32,
        data: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let aad = self.chunk_aad(index, raw_len);
        self.seal(index, false, &aad, data)
    }

    /// Decrypts a chunk in place: `data` is its ciphertext followed by the tag; returns the
    /// plaintext part.
    pub fn open_chunk<'a>(
        &self,
        index: u64,
        raw_len: u32,
        data: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let aad = self.chunk_aad(index, raw_len);
        self.open(index, false, &aad, data, || format!("chunk {index}"))
    }

    /// Encrypts the trailer (the final block), binding the header as written.
    pub fn seal_trailer(
        &self,
        header_sha256: &[u8; 32],
        data: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let aad = self.trailer_aad(TRAILER_INDEX, header_sha256);
        self.seal(TRAILER_INDEX, true, &aad, data)
    }

    /// Decrypts the trailer in place; returns the plaintext part.
    pub fn open_trailer<'a>(
        &self,
        header_sha256: &[u8; 32],
        data: &'a mut [u8],
    ) -> Result<&'a mut [u8], CryptoError> {
        let aad = self.trailer_aad(TRAILER_INDEX, header_sha256);
        self.open(TRAILER_INDEX, true, &aad, data, || "trailer".to_owned())
    }

    fn chunk_aad(&self, index: u64, raw_len: u32) -> [u8; 44] {
        let mut aad = [0u8; 44];
        aad[..32].copy_from_slice(&self.context);
        aad[32..40].copy_from_slice(&index.to_be_bytes());
        aad[40..].copy_from_slice(&raw_len.to_be_bytes());
        aad
    }

    fn trailer_aad(&self, index: u64, header_sha256: &[u8; 32]) -> [u8; 72] {
        let mut aad = [0u8; 72];
        aad[..32].copy_from_slice(&self.context);
        aad[32..40].copy_from_slice(&index.to_be_bytes());
        aad[40..].copy_from_slice(header_sha256);
        aad
    }

    fn seal(
        &self,
        index: u64,
        last: bool,
        aad: &[u8],
        data: &mut [u8],
    ) -> Result<[u8; TAG_LEN], CryptoError> {
        let nonce = nonce(index, last)?;
        let tag: Tag = self
            .key
            .seal_in_place_separate_tag(nonce, Aad::from(aad), data)
            .map_err(|_| CryptoError::Parameters {
                reason: "block too large to encrypt".to_owned(),
            })?;
        Ok(tag.as_ref().try_into().expect("AES-GCM tags are 16 bytes"))
    }

    fn open<'a>(
        &self,
        index: u64,
        last: bool,
        aad: &[u8],
        data: &'a mut [u8],
        what: impl FnOnce() -> String,
    ) -> Result<&'a mut [u8], CryptoError> {
        if data.len() < TAG_LEN {
            return Err(CryptoError::Authentication { what: what() });
        }
        let nonce = nonce(index, last)?;
        self.key
            .open_in_place(nonce, Aad::from(aad), data)
            .map_err(|_| CryptoError::Authentication { what: what() })
    }
}

fn nonce(index: u64, last: bool) -> Result<Nonce, CryptoError> {
    let counter = u32::try_from(index).map_err(|_| CryptoError::Parameters {
        reason: format!("block {index} is past the {MAX_BLOCKS}-block limit of one segment"),
    })?;
    let mut n = [0u8; 12];
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Ok(Nonce::assume_unique_for_key(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(start: i64) -> SegmentIdentity<'static> {
        SegmentIdentity {
            backup_id: "b",
            topic: "orders",
            topic_id: "0f5b3d2e-8c1a-4e6f-9a7b-123456789abc",
            partition: 3,
            start_offset: start,
            compression: "zstd",
        }
    }

    fn sealed(c: &SegmentCipher, index: u64, text: &[u8]) -> Vec<u8> {
        let mut data = text.to_vec();
        let tag = c.seal_chunk(index, text.len() as u32, &mut data).unwrap();
        data.extend_from_slice(&tag);
        data
    }

    #[test]
    fn chunks_round_trip_and_bind_index_length_identity_and_key() {
        let key = DataKey::generate().unwrap();
        let salt = [9u8; 32];
        let c = SegmentCipher::new(&key, &salt, &id(100));
        let mut block = sealed(&c, 0, b"batch bytes");
        assert_ne!(&block[..11], b"batch bytes");
        let mut copy = block.clone();
        assert_eq!(c.open_chunk(0, 11, &mut copy).unwrap(), b"batch bytes");

        // Another position, another declared length, another segment, another salt, another
        // key, the final flag, one flipped bit, a cut tag: all fail.
        assert!(c.open_chunk(1, 11, &mut block.clone()).is_err());
        assert!(c.open_chunk(0, 12, &mut block.clone()).is_err());
        let other = SegmentCipher::new(&key, &salt, &id(101));
        assert!(other.open_chunk(0, 11, &mut block.clone()).is_err());
        let resalted = SegmentCipher::new(&key, &[8u8; 32], &id(100));
        assert!(resalted.open_chunk(0, 11, &mut block.clone()).is_err());
        let rekeyed = SegmentCipher::new(&DataKey::generate().unwrap(), &salt, &id(100));
        assert!(rekeyed.open_chunk(0, 11, &mut block.clone()).is_err());
        assert!(c.open_trailer(&[0; 32], &mut block.clone()).is_err());
        block[3] ^= 0x10;
        let err = c.open_chunk(0, 11, &mut block.clone()).unwrap_err();
        assert!(
            err.to_string().contains("chunk 0 failed authentication"),
            "{err}"
        );
        assert!(c.open_chunk(0, 11, &mut block[..10]).is_err());
    }

    #[test]
    fn the_trailer_binds_the_header() {
        let key = DataKey::generate().unwrap();
        let c = SegmentCipher::new(&key, &[1; 32], &id(0));
        let mut t = b"{\"chunks\":1}".to_vec();
        let tag = c.seal_trailer(&[5; 32], &mut t).unwrap();
        t.extend_from_slice(&tag);
        assert!(c.open_trailer(&[6; 32], &mut t.clone()).is_err());
        assert!(
            c.open_chunk(u64::from(u32::MAX), 12, &mut t.clone())
                .is_err()
        );
        // A chunk is never accepted as the trailer.
        let mut chunk = b"{\"chunks\":1}".to_vec();
        let tag = c.seal_chunk(0, 12, &mut chunk).unwrap();
        chunk.extend_from_slice(&tag);
        assert!(c.open_trailer(&[5; 32], &mut chunk).is_err());
        assert_eq!(c.open_trailer(&[5; 32], &mut t).unwrap(), b"{\"chunks\":1}");
        assert!(nonce(MAX_BLOCKS + 1, false).is_err());
        assert_eq!(format!("{c:?}"), "SegmentCipher(***)");
    }
}
