//! A small, strict reader for the tar archives this project exchanges.
//!
//! Both a batch (`docs/format.md`, "Batch") and a submission's plaintext
//! ("Sealed submission") are tar archives of regular files with short
//! names. The reviewer reads them with this reader rather than a general tar
//! library because it needs less, not more: no extension headers (pax, GNU
//! long names), no links, no directories, and an explicit end-of-archive
//! marker, so that a hostile archive cannot mean one thing here and another
//! thing to a stock `tar`.
//!
//! Rules enforced for every header:
//! - the header checksum is right;
//! - the magic is POSIX ustar (`ustar\0` `00`, whose `prefix` field extends
//!   the name) or GNU (`ustar ` ` \0`, which has no `prefix` field);
//! - the entry type is `0` ("Entry type is `0` (regular file) for every
//!   entry; a reader refuses any other type");
//! - the path is UTF-8;
//! - the archive ends with a zero block followed by nothing but zeros (at
//!   least one more zero block), so a truncated archive is detected.
//!
//! Data is streamed: an entry's content is read through [`EntryData`], which
//! fails if the file ends before the size the header announced.

use std::fmt;
use std::io::{self, Read};

/// The tar block size.
const BLOCK: usize = 512;
/// Reading buffer for skipping and zero checks.
const CHUNK: usize = 64 * 1024;

/// Why an archive was refused. Messages carry no archive content.
#[derive(Debug)]
pub(crate) enum TarError {
    /// The underlying reader failed.
    Io(io::Error),
    /// The archive ends in the middle of a header or an entry, or without
    /// its end-of-archive marker.
    Truncated,
    /// A header's checksum is wrong.
    Checksum,
    /// A header is neither POSIX ustar nor GNU.
    NotUstar,
    /// An entry is not a regular file (links, directories, devices, pax or
    /// GNU extension headers).
    NotRegular,
    /// A header's path is not UTF-8.
    BadPath,
    /// A header's size field is malformed.
    BadSize,
    /// Something other than zeros follows the end-of-archive marker.
    TrailingData,
}

impl fmt::Display for TarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "read error: {e}"),
            Self::Truncated => f.write_str("the archive is truncated"),
            Self::Checksum => f.write_str("a tar header checksum is wrong"),
            Self::NotUstar => f.write_str("a tar header is not a ustar header"),
            Self::NotRegular => f.write_str("an entry is not a regular file"),
            Self::BadPath => f.write_str("an entry path is not UTF-8"),
            Self::BadSize => f.write_str("a tar header has a malformed size"),
            Self::TrailingData => f.write_str("data follows the end of the archive"),
        }
    }
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Self::Truncated
        } else {
            Self::Io(e)
        }
    }
}

/// One entry's header, as far as this project's formats use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    /// The full path (ustar `prefix` + `/` + `name`).
    pub(crate) path: String,
    /// The size of the entry's data in bytes.
    pub(crate) size: u64,
}

/// Reads entries one after the other from a tar stream.
#[derive(Debug)]
pub(crate) struct Reader<R> {
    inner: R,
    /// Unread data bytes of the current entry.
    remaining: u64,
    /// Padding bytes after the current entry's data.
    padding: u64,
    /// The end-of-archive marker was seen.
    finished: bool,
}

impl<R: Read> Reader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            remaining: 0,
            padding: 0,
            finished: false,
        }
    }

    /// The next entry's header, or `None` at a valid end of archive. Any
    /// unread data of the previous entry is skipped first.
    pub(crate) fn next_entry(&mut self) -> Result<Option<Header>, TarError> {
        if self.finished {
            return Ok(None);
        }
        let skip = self.remaining + self.padding;
        self.skip(skip)?;
        self.remaining = 0;
        self.padding = 0;

        let mut block = [0u8; BLOCK];
        self.inner.read_exact(&mut block)?;
        if block.iter().all(|b| *b == 0) {
            self.finish_zeros()?;
            self.finished = true;
            return Ok(None);
        }
        let header = parse_header(&block)?;
        self.remaining = header.size;
        self.padding = padding_for(header.size);
        Ok(Some(header))
    }

    /// A reader over the current entry's data. It ends after the header's
    /// size and fails with `UnexpectedEof` if the archive ends first.
    pub(crate) fn data(&mut self) -> EntryData<'_, R> {
        EntryData { reader: self }
    }

    /// After the first zero block: at least one more zero block, then only
    /// zeros until the end of the stream (GNU tar pads to a record size).
    fn finish_zeros(&mut self) -> Result<(), TarError> {
        let mut buf = vec![0u8; CHUNK];
        let mut total: u64 = 0;
        loop {
            let n = match self.inner.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            if buf[..n].iter().any(|b| *b != 0) {
                return Err(TarError::TrailingData);
            }
            total += n as u64;
        }
        if total < BLOCK as u64 {
            return Err(TarError::Truncated);
        }
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> Result<(), TarError> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let want = usize::try_from(n.min(buf.len() as u64)).unwrap_or(buf.len());
            let got = match self.inner.read(&mut buf[..want]) {
                Ok(0) => return Err(TarError::Truncated),
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            n -= got as u64;
        }
        Ok(())
    }
}

/// The data of the current entry; see [`Reader::data`].
#[derive(Debug)]
pub(crate) struct EntryData<'a, R> {
    reader: &'a mut Reader<R>,
}

impl<R: Read> Read for EntryData<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let remaining = self.reader.remaining;
        if remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(remaining.min(buf.len() as u64)).unwrap_or(buf.len());
        let n = self.reader.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the archive ends inside an entry",
            ));
        }
        self.reader.remaining -= n as u64;
        Ok(n)
    }
}

fn padding_for(size: u64) -> u64 {
    let rem = size % BLOCK as u64;
    if rem == 0 { 0 } else { BLOCK as u64 - rem }
}

/// Parses one non-zero header block.
fn parse_header(block: &[u8; BLOCK]) -> Result<Header, TarError> {
    // Checksum: the sum of all header bytes as unsigned, with the checksum
    // field itself counted as eight spaces.
    let stored = parse_octal(&block[148..156]).ok_or(TarError::Checksum)?;
    let sum: u64 = block
        .iter()
        .enumerate()
        .map(|(i, b)| {
            if (148..156).contains(&i) {
                u64::from(b' ')
            } else {
                u64::from(*b)
            }
        })
        .sum();
    if sum != stored {
        return Err(TarError::Checksum);
    }

    let magic = &block[257..263];
    let version = &block[263..265];
    let ustar = magic == b"ustar\0" && version == b"00";
    let gnu = magic == b"ustar " && version == b" \0";
    if !ustar && !gnu {
        return Err(TarError::NotUstar);
    }
    if block[156] != b'0' {
        return Err(TarError::NotRegular);
    }

    let name = until_nul(&block[0..100]);
    let prefix = if ustar {
        until_nul(&block[345..500])
    } else {
        &[][..]
    };
    let mut path = Vec::with_capacity(prefix.len() + 1 + name.len());
    if !prefix.is_empty() {
        path.extend_from_slice(prefix);
        path.push(b'/');
    }
    path.extend_from_slice(name);
    let path = String::from_utf8(path).map_err(|_| TarError::BadPath)?;

    let size = parse_size(&block[124..136]).ok_or(TarError::BadSize)?;
    Ok(Header { path, size })
}

fn until_nul(field: &[u8]) -> &[u8] {
    match field.iter().position(|b| *b == 0) {
        Some(i) => &field[..i],
        None => field,
    }
}

/// An octal number field: optional leading spaces, at least one octal
/// digit, then optional NULs or spaces to the end of the field.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let start = field.iter().position(|b| *b != b' ')?;
    let digits = &field[start..];
    let end = digits
        .iter()
        .position(|b| *b == 0 || *b == b' ')
        .unwrap_or(digits.len());
    if end == 0 || !digits[end..].iter().all(|b| *b == 0 || *b == b' ') {
        return None;
    }
    digits[..end].iter().try_fold(0u64, |acc, d| match d {
        b'0'..=b'7' => acc.checked_mul(8)?.checked_add(u64::from(d - b'0')),
        _ => None,
    })
}

/// The size field: octal, or (for sizes of 8 GiB and more) GNU base-256
/// with the high bit of the first byte set. Negative values are refused.
fn parse_size(field: &[u8]) -> Option<u64> {
    match field.first() {
        Some(0x80) => field[1..].iter().try_fold(0u64, |acc, b| {
            acc.checked_mul(256)?.checked_add(u64::from(*b))
        }),
        Some(b) if b & 0x80 != 0 => None,
        _ => parse_octal(field),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn build(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in entries {
            let mut h = tar::Header::new_ustar();
            h.set_path(path).unwrap();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_entry_type(tar::EntryType::Regular);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<(String, Vec<u8>)>, TarError> {
        let mut r = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(h) = r.next_entry()? {
            let mut data = Vec::new();
            r.data().read_to_end(&mut data)?;
            assert_eq!(data.len() as u64, h.size);
            out.push((h.path, data));
        }
        Ok(out)
    }

    #[test]
    fn reads_what_tar_writes() {
        let long = format!("files/{}", "я".repeat(50));
        let bytes = build(&[("a.json", b"{}"), (&long, &[7u8; 1000]), ("padding", &[])]);
        let got = read_all(&bytes).unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(got[1].0, long);
        assert_eq!(got[1].1, vec![7u8; 1000]);
    }

    #[test]
    fn skips_unread_data() {
        let bytes = build(&[("a", &[1u8; 700]), ("b", b"x")]);
        let mut r = Reader::new(&bytes[..]);
        assert_eq!(r.next_entry().unwrap().unwrap().path, "a");
        assert_eq!(r.next_entry().unwrap().unwrap().path, "b");
        assert!(r.next_entry().unwrap().is_none());
    }

    #[test]
    fn refuses_truncation_anywhere() {
        let bytes = build(&[("a", &[1u8; 700]), ("b", b"x")]);
        for cut in 0..bytes.len() {
            assert!(read_all(&bytes[..cut]).is_err(), "accepted a cut at {cut}");
        }
        // Exactly at the end of the last entry: no end-of-archive marker.
        assert!(matches!(read_all(&bytes[..2048]), Err(TarError::Truncated)));
        // One zero block is not enough.
        assert!(matches!(
            read_all(&bytes[..2048 + 512]),
            Err(TarError::Truncated)
        ));
    }

    #[test]
    fn refuses_trailing_data_and_bad_checksums() {
        let mut bytes = build(&[("a", b"x")]);
        bytes.extend_from_slice(&[0u8; 512]);
        *bytes.last_mut().unwrap() = 1;
        assert!(matches!(read_all(&bytes), Err(TarError::TrailingData)));

        let mut bytes = build(&[("a", b"x")]);
        bytes[0] = b'b';
        assert!(matches!(read_all(&bytes), Err(TarError::Checksum)));
    }

    #[test]
    fn refuses_links_and_extensions() {
        for kind in [
            tar::EntryType::Symlink,
            tar::EntryType::Link,
            tar::EntryType::Directory,
            tar::EntryType::XHeader,
            tar::EntryType::GNULongName,
            tar::EntryType::Char,
        ] {
            let mut h = tar::Header::new_ustar();
            h.set_path("a").unwrap();
            h.set_size(0);
            h.set_entry_type(kind);
            h.set_cksum();
            let mut b = tar::Builder::new(Vec::new());
            b.append(&h, &[][..]).unwrap();
            let bytes = b.into_inner().unwrap();
            assert!(
                matches!(read_all(&bytes), Err(TarError::NotRegular)),
                "{kind:?}"
            );
        }
    }

    #[test]
    fn refuses_old_headers() {
        let mut h = tar::Header::new_old();
        h.set_path("a").unwrap();
        h.set_size(0);
        h.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&h, &[][..]).unwrap();
        assert!(matches!(
            read_all(&b.into_inner().unwrap()),
            Err(TarError::NotUstar)
        ));
    }

    #[test]
    fn size_fields() {
        assert_eq!(parse_size(b"00000001750\0"), Some(1000));
        assert_eq!(parse_size(b"     1750 \0\0"), Some(1000));
        assert_eq!(parse_size(b"\0\0\0\0\0\0\0\0\0\0\0\0"), None);
        assert_eq!(parse_size(b"0000000175x\0"), None);
        assert_eq!(parse_size(b"00001 750\0\0\0"), None);
        let mut big = [0u8; 12];
        big[0] = 0x80;
        big[11] = 5;
        big[10] = 1;
        assert_eq!(parse_size(&big), Some(261));
        big[0] = 0xff;
        assert_eq!(parse_size(&big), None);
    }

    proptest! {
        #[test]
        fn round_trip(
            entries in proptest::collection::vec(
                ("[a-z]{1,20}(/[a-z0-9][a-z0-9.]{0,59})?", proptest::collection::vec(any::<u8>(), 0..1500)),
                0..6,
            )
        ) {
            let refs: Vec<(&str, &[u8])> =
                entries.iter().map(|(p, d)| (p.as_str(), d.as_slice())).collect();
            let bytes = build(&refs);
            let got = read_all(&bytes).unwrap();
            prop_assert_eq!(got.len(), entries.len());
            for ((p, d), (gp, gd)) in entries.iter().zip(&got) {
                prop_assert_eq!(p, gp);
                prop_assert_eq!(d, gd);
            }
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
            let _ = read_all(&bytes);
        }

        #[test]
        fn never_panics_on_mutated_archives(pos in 0usize..3072, val in any::<u8>()) {
            let mut bytes = build(&[("a", &[1u8; 600]), ("b", b"xyz")]);
            let i = pos % bytes.len();
            bytes[i] = val;
            let _ = read_all(&bytes);
        }
    }
}
