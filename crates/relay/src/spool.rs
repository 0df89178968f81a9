//! The spool's cipher: how attachments wait, encrypted, until the form is
//! complete and they can be sealed (see [`crate::seal`] for why they must
//! wait).
//!
//! The spool file is written once, read back once by the same process, and
//! deleted; its key is random, exists only in this process's memory, and is
//! used for that one file. So it needs confidentiality and integrity against
//! someone who can read or change the disk while the upload is in flight,
//! but no key agreement, no header and no format anyone else reads. It is:
//!
//! - AES-256-GCM from AWS-LC (the library rustls already uses for TLS),
//!   which runs at several GiB/s with the CPU's AES instructions. It
//!   replaced an age spool to an ephemeral X25519 key, whose ChaCha20-
//!   Poly1305 passes (one to spool, one to read back) were about a third of
//!   the relay's CPU on a large upload (`docs/decisions.md`, "Large uploads").
//! - The STREAM construction, as age uses it: the plaintext in 64 KiB
//!   chunks, each sealed under the nonce "chunk counter ‖ last-chunk flag",
//!   so chunks cannot be reordered, dropped, repeated or truncated
//!   unnoticed. The reader also knows the plaintext's exact length, so the
//!   number of chunks and the size of each are fixed before it reads.
//!
//! Plaintext lives only in one chunk buffer per direction, allocated once
//! at its full size (never reallocated, so never copied behind our back)
//! and zeroized on drop. The raw key bytes are zeroized as soon as AWS-LC
//! has expanded them; AWS-LC clears its key schedule when the key is
//! freed (its allocator zeroes every allocation it frees).

use std::fs::File;
use std::io::{self, Read, Write};

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::Zeroizing;

/// Plaintext bytes per chunk (as age's STREAM).
const CHUNK: usize = 64 * 1024;
/// The GCM tag after each chunk.
const TAG: usize = 16;

/// A spool's key: random, for one spool file only.
pub(crate) struct SpoolKey(LessSafeKey);

impl SpoolKey {
    /// A fresh random key.
    pub(crate) fn generate() -> io::Result<Self> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(&mut bytes[..])
            .map_err(|_| io::Error::other("the system's random number generator failed"))?;
        let key = UnboundKey::new(&AES_256_GCM, &bytes[..])
            .map_err(|_| io::Error::other("AES-256-GCM refused a 32-byte key"))?;
        Ok(Self(LessSafeKey::new(key)))
    }
}

/// The nonce of chunk `counter`: 11 bytes of big-endian counter, then the
/// last-chunk flag (STREAM). A key seals one file, so no nonce repeats.
fn nonce(counter: u64, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[3..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::assume_unique_for_key(n)
}

/// How many chunks a plaintext of `len` bytes takes: at least one (an
/// empty plaintext is one empty last chunk).
fn chunks_for(len: u64) -> u64 {
    len.div_ceil(CHUNK as u64).max(1)
}

/// Encrypts into a spool file.
pub(crate) struct SpoolWriter {
    file: File,
    key: SpoolKey,
    /// The chunk being filled; its capacity is fixed at `CHUNK + TAG`.
    buf: Zeroizing<Vec<u8>>,
    counter: u64,
    len: u64,
}

impl SpoolWriter {
    /// A writer to `file` (empty) under a new random key.
    pub(crate) fn new(file: File) -> io::Result<Self> {
        Ok(Self {
            file,
            key: SpoolKey::generate()?,
            buf: Zeroizing::new(Vec::with_capacity(CHUNK + TAG)),
            counter: 0,
            len: 0,
        })
    }

    /// Seals the buffered chunk and writes it out.
    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        let tag = self
            .key
            .0
            .seal_in_place_separate_tag(nonce(self.counter, last), Aad::empty(), &mut self.buf)
            .map_err(|_| io::Error::other("AES-256-GCM failed to seal a spool chunk"))?;
        self.buf.extend_from_slice(tag.as_ref());
        self.file.write_all(&self.buf)?;
        self.buf.clear();
        self.counter += 1;
        Ok(())
    }

    /// Seals the last chunk and returns what reading it back needs.
    pub(crate) fn finish(mut self) -> io::Result<(File, SpoolKey, u64)> {
        self.seal_chunk(true)?;
        Ok((self.file, self.key, self.len))
    }
}

impl Write for SpoolWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        // A full chunk is sealed only once more data arrives: until then it
        // may still turn out to be the last one.
        if self.buf.len() == CHUNK && !data.is_empty() {
            self.seal_chunk(false)?;
        }
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Decrypts a spool file written by [`SpoolWriter`]. Any change to the
/// file (a flipped bit, a missing, repeated or extra chunk) is an
/// `InvalidData` error, never wrong plaintext.
pub(crate) struct SpoolReader {
    file: File,
    key: SpoolKey,
    buf: Zeroizing<Vec<u8>>,
    /// Unread plaintext is `buf[pos..end]`.
    pos: usize,
    end: usize,
    counter: u64,
    chunks: u64,
    left: u64,
}

impl SpoolReader {
    /// Reads `len` bytes of plaintext from `file`, positioned at its start.
    pub(crate) fn new(file: File, key: SpoolKey, len: u64) -> Self {
        Self {
            file,
            key,
            buf: Zeroizing::new(vec![0u8; CHUNK + TAG]),
            pos: 0,
            end: 0,
            counter: 0,
            chunks: chunks_for(len),
            left: len,
        }
    }

    /// Decrypts the next chunk into `buf`; false at the end.
    fn next_chunk(&mut self) -> io::Result<bool> {
        if self.counter == self.chunks {
            return Ok(false);
        }
        let changed = || io::Error::new(io::ErrorKind::InvalidData, "the spool file was changed");
        // Every chunk but the last is full, so each one's size is known.
        let n = usize::try_from(self.left.min(CHUNK as u64)).map_err(|_| changed())?;
        self.file
            .read_exact(&mut self.buf[..n + TAG])
            .map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => changed(),
                _ => e,
            })?;
        let last = self.counter + 1 == self.chunks;
        let plain = self
            .key
            .0
            .open_in_place(
                nonce(self.counter, last),
                Aad::empty(),
                &mut self.buf[..n + TAG],
            )
            .map_err(|_| changed())?;
        debug_assert_eq!(plain.len(), n);
        if last && self.file.read(&mut [0u8; 1])? != 0 {
            return Err(changed());
        }
        self.counter += 1;
        self.left -= n as u64;
        self.pos = 0;
        self.end = n;
        Ok(true)
    }
}

impl Read for SpoolReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.end {
            if out.is_empty() || !self.next_chunk()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    /// Spools `data` in pieces of `piece` bytes; returns the file's bytes
    /// and a reader over them.
    fn spool(data: &[u8], piece: usize) -> (Vec<u8>, SpoolReader) {
        let mut w = SpoolWriter::new(tempfile::tempfile().unwrap()).unwrap();
        for part in data.chunks(piece.max(1)) {
            w.write_all(part).unwrap();
        }
        let (mut file, key, len) = w.finish().unwrap();
        assert_eq!(len, data.len() as u64);
        file.rewind().unwrap();
        let mut raw = Vec::new();
        file.read_to_end(&mut raw).unwrap();
        file.rewind().unwrap();
        (raw, SpoolReader::new(file, key, len))
    }

    fn read_all(mut r: SpoolReader) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        r.read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn round_trips_at_every_chunk_boundary() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for piece in [1000, CHUNK, 200_000] {
                let (raw, reader) = spool(&data, piece);
                assert_eq!(
                    raw.len() as u64,
                    len as u64 + chunks_for(len as u64) * TAG as u64
                );
                assert_eq!(read_all(reader).unwrap(), data, "{len} in {piece}");
            }
        }
    }

    #[test]
    fn the_file_holds_no_plaintext() {
        let canary = b"CANARY-spool-aes-4b1e";
        let data = canary.repeat(10_000);
        let (raw, _) = spool(&data, 4096);
        assert!(!raw.windows(canary.len()).any(|w| w == canary));
    }

    /// Writes `raw` into the reader's file in place of what was there.
    fn with_file(mut reader: SpoolReader, raw: &[u8]) -> SpoolReader {
        reader.file.set_len(0).unwrap();
        reader.file.seek(SeekFrom::Start(0)).unwrap();
        reader.file.write_all(raw).unwrap();
        reader.file.rewind().unwrap();
        reader
    }

    #[test]
    fn any_change_to_the_file_is_an_error() {
        let data = vec![7u8; 2 * CHUNK + 100];
        let (raw, _) = spool(&data, CHUNK);
        let chunk = CHUNK + TAG;
        let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut flipped = raw.clone();
        flipped[CHUNK + 5] ^= 1;
        cases.push(("a flipped bit", flipped));
        cases.push(("a truncated end", raw[..raw.len() - 1].to_vec()));
        cases.push(("the last chunk dropped", raw[..2 * chunk].to_vec()));
        let mut swapped = raw[chunk..2 * chunk].to_vec();
        swapped.extend_from_slice(&raw[..chunk]);
        swapped.extend_from_slice(&raw[2 * chunk..]);
        cases.push(("two chunks swapped", swapped));
        let mut extra = raw.clone();
        extra.push(0);
        cases.push(("a byte appended", extra));
        for (what, bad) in cases {
            let (_, reader) = spool(&data, CHUNK);
            let e = read_all(with_file(reader, &bad)).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{what}");
        }
        // The first of two chunks passed off as the whole spool, under the
        // same key: only its last-chunk flag tells.
        let mut w = SpoolWriter::new(tempfile::tempfile().unwrap()).unwrap();
        w.write_all(&data[..2 * CHUNK]).unwrap();
        let (mut file, key, _) = w.finish().unwrap();
        file.set_len(chunk as u64).unwrap();
        file.rewind().unwrap();
        let e = read_all(SpoolReader::new(file, key, CHUNK as u64)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn another_spools_key_cannot_read_it() {
        let data = vec![1u8; 1000];
        let (raw, _) = spool(&data, 100);
        let (_, other) = spool(&data, 100);
        let e = read_all(with_file(other, &raw)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
