//! Hostile attachments for the "hostile batch" tests.
//!
//! Pure functions (no I/O, only `flate2` and std), each returning the bytes
//! of one attachment built to make a parser or a metadata scrubber run out of
//! memory, stack or time, or to pass for a PDF while being something else.
//! Every file is well formed where being well formed is what makes it
//! dangerous: a careless parser accepts it and then does the expensive thing.
//!
//! - [`pdf_bomb_object_streams`]: a PDF 1.7 (catalog, page tree, one page,
//!   cross-reference *stream*) holding `streams` compressed object streams
//!   (`/Type /ObjStm /Filter /FlateDecode`). Each inflates to `each_mib` MiB
//!   plus a few bytes and holds one object, a literal string of `each_mib` MiB
//!   of `A`, which the catalog references (`/HostilePayload`). Every stream
//!   stays under the 64 MiB per-stream decompression limit, so the bomb bites
//!   by *total*: a parser that loads the document keeps every string in
//!   memory. `(60, 60)` is about 3.7 MB on disk and ~3.5 GiB in memory. It is
//!   built in milliseconds: one MiB of filler is deflated once, ending on a
//!   sync flush (non-final blocks, byte aligned, no back-references before its
//!   start), and that block run is repeated inside every stream, between a
//!   stored block with the stream's own `N 0 (` header and a final stored
//!   block with `)`. The Adler-32 of each stream is combined arithmetically.
//! - [`pdf_bomb_small`]: the same with 8 streams of 25 MiB (~200 MiB total),
//!   for quick tests.
//! - [`pdf_deeply_nested`]: a PDF (classic xref table) whose catalog holds an
//!   array nested `depth` deep (`/Nested [[[…]]]`); at depth 1,000,000 (2 MB)
//!   it overflows the stack of a recursive-descent parser.
//! - [`jpeg_huge_dimensions`]: a JPEG (SOI, APP0 JFIF, DQT, SOF0, DHT, SOS, a
//!   few bytes of scan, EOI) whose SOF0 declares 65500×65500 with 3
//!   components (the JPEG maximum): a decoder allocates ~12 GiB of pixels
//!   for 8 bytes of scan data.
//! - [`jpeg_million_segments`]: a valid 8×8 greyscale JPEG with 1,000,000
//!   one-byte COM segments (5 bytes each) before the frame, so a segment
//!   parser that keeps a list (img-parts does) builds a million entries.
//! - [`png_huge_dimensions`]: a PNG with valid CRCs whose IHDR declares
//!   (2^31−1)×(2^31−1) 8-bit RGBA (the PNG maximum, 16 EiB of pixels) with a
//!   tiny IDAT and IEND.
//! - [`png_million_chunks`]: a valid 1×1 RGBA PNG with 1,000,000 small
//!   `tEXt` chunks (valid CRCs) between IHDR and IDAT.
//! - [`zip_named_pdf`]: a real, minimal ZIP archive (one stored file, correct
//!   CRC-32, central directory, end record), to be attached under a `.pdf`
//!   name: content that is not what its name says.
//! - [`tar_named_pdf`]: the same idea as a minimal ustar archive with one
//!   file.
//!
//! [`jpeg_many_segments`] and [`png_many_chunks`] take the count, for tests
//! that want fewer.

use flate2::{Compress, Compression, Crc, FlushCompress};

const MIB: usize = 1 << 20;

/// lopdf's per-stream decompression limit in the reviewer, in MiB.
pub(crate) const PDF_STREAM_LIMIT_MIB: usize = 64;

/// The byte that fills the bomb's strings: not `(`, `)` or `\`, so the
/// literal string needs no escapes.
pub(crate) const BOMB_FILL: u8 = b'A';

/// A PDF of `streams` Flate object streams, each inflating to `each_mib` MiB
/// (plus a few bytes) with one huge literal string in it; see the module docs.
///
/// # Panics
///
/// If `streams` is 0 or `each_mib` is not in `1..64` (a stream must stay
/// under lopdf's 64 MiB per-stream limit).
pub(crate) fn pdf_bomb_object_streams(streams: usize, each_mib: usize) -> Vec<u8> {
    assert!(streams > 0, "a bomb needs at least one stream");
    assert!(
        (1..PDF_STREAM_LIMIT_MIB).contains(&each_mib),
        "each stream must stay under {PDF_STREAM_LIMIT_MIB} MiB decompressed"
    );
    let filler = vec![BOMB_FILL; MIB];
    let block = deflate_sync_flushed(&filler);
    let filler_adler = adler32(ADLER_INIT, &filler);
    let mut big_adler = ADLER_INIT;
    for _ in 0..each_mib {
        big_adler = adler32_combine(big_adler, filler_adler, MIB as u64);
    }
    let big_len = (each_mib * MIB) as u64;

    // 1 catalog, 2 pages, 3 page, then the object streams, then the strings
    // they hold, then the xref stream.
    let first_stream = 4;
    let first_string = first_stream + streams;
    let xref_num = first_string + streams;
    let size = xref_num + 1;

    let mut out = Vec::with_capacity(streams * (each_mib * block.len() + 256) + size * 16 + 1024);
    out.extend_from_slice(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n");
    let mut offsets = vec![0usize; size];

    let refs: Vec<String> = (first_string..xref_num)
        .map(|n| format!("{n} 0 R"))
        .collect();
    offsets[1] = out.len();
    push_str(
        &mut out,
        &format!(
            "1 0 obj\n<< /Type /Catalog /Pages 2 0 R /HostilePayload [{}] >>\nendobj\n",
            refs.join(" ")
        ),
    );
    push_single_page_tree(&mut out, &mut offsets);

    for i in 0..streams {
        let stream_num = first_stream + i;
        let string_num = first_string + i;
        let index = format!("{string_num} 0 ");
        let prefix = format!("{index}(");
        let adler = adler32_combine(
            adler32_combine(adler32(ADLER_INIT, prefix.as_bytes()), big_adler, big_len),
            adler32(ADLER_INIT, b")"),
            1,
        );
        let length = 2 + (5 + prefix.len()) + each_mib * block.len() + (5 + 1) + 4;
        offsets[stream_num] = out.len();
        push_str(
            &mut out,
            &format!(
                "{stream_num} 0 obj\n<< /Type /ObjStm /N 1 /First {} /Filter /FlateDecode /Length {length} >>\nstream\n",
                index.len()
            ),
        );
        let start = out.len();
        // zlib header: deflate, 32 KiB window, no dictionary.
        out.extend_from_slice(&[0x78, 0x01]);
        push_stored_block(&mut out, prefix.as_bytes(), false);
        for _ in 0..each_mib {
            out.extend_from_slice(&block);
        }
        push_stored_block(&mut out, b")", true);
        out.extend_from_slice(&adler.to_be_bytes());
        debug_assert_eq!(out.len() - start, length);
        out.extend_from_slice(b"\nendstream\nendobj\n");
    }

    // The cross-reference stream, uncompressed: /W [1 4 2].
    let xref_offset = out.len();
    offsets[xref_num] = xref_offset;
    let mut entries = Vec::with_capacity(size * 7);
    for (num, &offset) in offsets.iter().enumerate() {
        let (kind, field2, field3): (u8, u32, u16) = if num == 0 {
            (0, 0, 0xFFFF)
        } else if (first_string..xref_num).contains(&num) {
            (2, u32_of(num - streams), 0)
        } else {
            (1, u32_of(offset), 0)
        };
        entries.push(kind);
        entries.extend_from_slice(&field2.to_be_bytes());
        entries.extend_from_slice(&field3.to_be_bytes());
    }
    push_str(
        &mut out,
        &format!(
            "{xref_num} 0 obj\n<< /Type /XRef /Size {size} /W [1 4 2] /Root 1 0 R /Length {} >>\nstream\n",
            entries.len()
        ),
    );
    out.extend_from_slice(&entries);
    push_str(
        &mut out,
        &format!("\nendstream\nendobj\nstartxref\n{xref_offset}\n%%EOF\n"),
    );
    out
}

/// [`pdf_bomb_object_streams`] with 8 streams of 25 MiB: ~200 MiB in total.
pub(crate) fn pdf_bomb_small() -> Vec<u8> {
    pdf_bomb_object_streams(8, 25)
}

/// A PDF whose catalog holds `/Nested` followed by an array nested `depth`
/// deep: `[` × depth then `]` × depth. Classic xref table.
///
/// # Panics
///
/// If `depth` is 0.
pub(crate) fn pdf_deeply_nested(depth: usize) -> Vec<u8> {
    assert!(depth > 0, "an array needs at least one level");
    let mut out = Vec::with_capacity(2 * depth + 1024);
    out.extend_from_slice(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n");
    let mut offsets = vec![0usize; 4];
    offsets[1] = out.len();
    out.extend_from_slice(b"1 0 obj\n<< /Type /Catalog /Pages 2 0 R /Nested ");
    out.resize(out.len() + depth, b'[');
    out.resize(out.len() + depth, b']');
    out.extend_from_slice(b" >>\nendobj\n");
    push_single_page_tree(&mut out, &mut offsets);
    let xref_offset = out.len();
    push_str(&mut out, &format!("xref\n0 {}\n", offsets.len()));
    out.extend_from_slice(b"0000000000 65535 f \n");
    for offset in &offsets[1..] {
        push_str(&mut out, &format!("{offset:010} 00000 n \n"));
    }
    push_str(
        &mut out,
        &format!(
            "trailer\n<< /Size {} /Root 1 0 R >>\nstartxref\n{xref_offset}\n%%EOF\n",
            offsets.len()
        ),
    );
    out
}

/// A baseline JPEG whose SOF0 declares 65500×65500, 3 components, with 8
/// bytes of scan data.
pub(crate) fn jpeg_huge_dimensions() -> Vec<u8> {
    // Every bit of the scan is 0: with the one-code tables below, each
    // 2 bits is a block with DC difference 0 and an immediate EOB.
    jpeg(65500, 65500, 3, &[0; 8], 0)
}

/// A valid 8×8 greyscale JPEG with 1,000,000 COM segments before the frame.
pub(crate) fn jpeg_million_segments() -> Vec<u8> {
    jpeg_many_segments(1_000_000)
}

/// A valid 8×8 greyscale JPEG with `count` COM segments (one byte of comment
/// each) between APP0 and DQT.
pub(crate) fn jpeg_many_segments(count: usize) -> Vec<u8> {
    // One block: DC 0, EOB, padded with 1 bits.
    jpeg(8, 8, 1, &[0b0011_1111], count)
}

fn jpeg(width: u16, height: u16, components: u8, scan: &[u8], comments: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(comments * 5 + 512);
    out.extend_from_slice(&[0xFF, 0xD8]);
    // APP0 JFIF 1.01, aspect ratio 1:1, no thumbnail.
    push_segment(
        &mut out,
        0xE0,
        &[b'J', b'F', b'I', b'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0],
    );
    for _ in 0..comments {
        push_segment(&mut out, 0xFE, b"x");
    }
    // DQT: table 0, 8-bit, all ones.
    let mut dqt = vec![0u8];
    dqt.resize(1 + 64, 1);
    push_segment(&mut out, 0xDB, &dqt);
    // SOF0: 8-bit precision, then every component 1×1 sampled, table 0.
    let mut sof = vec![8];
    sof.extend_from_slice(&height.to_be_bytes());
    sof.extend_from_slice(&width.to_be_bytes());
    sof.push(components);
    for id in 1..=components {
        sof.extend_from_slice(&[id, 0x11, 0]);
    }
    push_segment(&mut out, 0xC0, &sof);
    // DHT: DC table 0 and AC table 0, each with one 1-bit code (`0`) for
    // symbol 0 (DC: difference category 0; AC: EOB).
    let mut dht = Vec::with_capacity(2 * 18);
    for class in [0x00, 0x10] {
        dht.push(class);
        let mut counts = [0u8; 16];
        counts[0] = 1;
        dht.extend_from_slice(&counts);
        dht.push(0);
    }
    push_segment(&mut out, 0xC4, &dht);
    // SOS: all components, tables 0/0, spectral 0..63, no approximation.
    let mut sos = vec![components];
    for id in 1..=components {
        sos.extend_from_slice(&[id, 0x00]);
    }
    sos.extend_from_slice(&[0, 63, 0]);
    push_segment(&mut out, 0xDA, &sos);
    out.extend_from_slice(scan);
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// A PNG whose IHDR declares (2^31−1)×(2^31−1) 8-bit RGBA, with a tiny IDAT.
pub(crate) fn png_huge_dimensions() -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(PNG_SIGNATURE);
    push_chunk(&mut out, b"IHDR", &ihdr(0x7FFF_FFFF, 0x7FFF_FFFF));
    // The start of the first row: filter byte 0 and some transparent black.
    push_chunk(&mut out, b"IDAT", &zlib(&[0; 65]));
    push_chunk(&mut out, b"IEND", &[]);
    out
}

/// A valid 1×1 RGBA PNG with 1,000,000 `tEXt` chunks between IHDR and IDAT.
pub(crate) fn png_million_chunks() -> Vec<u8> {
    png_many_chunks(1_000_000)
}

/// A valid 1×1 RGBA PNG with `count` `tEXt` chunks (`a` = `b`, 15 bytes
/// each) between IHDR and IDAT.
pub(crate) fn png_many_chunks(count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(count * 15 + 128);
    out.extend_from_slice(PNG_SIGNATURE);
    push_chunk(&mut out, b"IHDR", &ihdr(1, 1));
    for _ in 0..count {
        push_chunk(&mut out, b"tEXt", b"a\0b");
    }
    // One row: filter 0, one opaque red pixel.
    push_chunk(&mut out, b"IDAT", &zlib(&[0, 0xFF, 0, 0, 0xFF]));
    push_chunk(&mut out, b"IEND", &[]);
    out
}

/// The name of the one file in [`zip_named_pdf`] and [`tar_named_pdf`].
pub(crate) const ARCHIVE_MEMBER_NAME: &str = "notes.txt";
/// The content of that file.
pub(crate) const ARCHIVE_MEMBER_CONTENT: &[u8] = b"This is an archive member, not a PDF.\n";

/// A minimal ZIP archive: one stored file ([`ARCHIVE_MEMBER_NAME`]), its
/// central directory entry and the end record.
pub(crate) fn zip_named_pdf() -> Vec<u8> {
    let name = ARCHIVE_MEMBER_NAME.as_bytes();
    let data = ARCHIVE_MEMBER_CONTENT;
    let mut crc = Crc::new();
    crc.update(data);
    let crc = crc.sum();
    let size = u32_of(data.len());
    let name_len = u16::try_from(name.len()).expect("short name");
    // 2024-01-01 00:00:00 in MS-DOS form.
    let (time, date): (u16, u16) = (0, ((2024 - 1980) << 9) | (1 << 5) | 1);

    let mut out = Vec::with_capacity(256);
    // Local file header.
    out.extend_from_slice(&0x0403_4B50u32.to_le_bytes());
    for field in [10u16, 0, 0, time, date] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    for field in [crc, size, size] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(&name_len.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(name);
    out.extend_from_slice(data);

    // Central directory.
    let cd_offset = u32_of(out.len());
    out.extend_from_slice(&0x0201_4B50u32.to_le_bytes());
    // Made by: Unix, spec 2.0; needed 1.0; flags; method (stored); time; date.
    for field in [0x0314u16, 10, 0, 0, time, date] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    for field in [crc, size, size] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    // Name, extra and comment lengths; disk; internal attributes.
    for field in [name_len, 0, 0, 0, 0] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    // External attributes (regular file, 0644) and the local header offset.
    for field in [0o100_644u32 << 16, 0] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(name);
    let cd_size = u32_of(out.len()) - cd_offset;

    // End of central directory record.
    out.extend_from_slice(&0x0605_4B50u32.to_le_bytes());
    for field in [0u16, 0, 1, 1] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    for field in [cd_size, cd_offset] {
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// A minimal ustar archive: one regular file ([`ARCHIVE_MEMBER_NAME`]) and
/// the two zero blocks that end it.
pub(crate) fn tar_named_pdf() -> Vec<u8> {
    let data = ARCHIVE_MEMBER_CONTENT;
    let mut header = [0u8; 512];
    let mut put = |at: usize, field: &[u8]| header[at..at + field.len()].copy_from_slice(field);
    put(0, ARCHIVE_MEMBER_NAME.as_bytes());
    put(100, b"0000644\0");
    put(108, b"0000000\0");
    put(116, b"0000000\0");
    put(124, format!("{:011o}\0", data.len()).as_bytes());
    // 2024-01-01T00:00:00Z.
    put(136, format!("{:011o}\0", 1_704_067_200u64).as_bytes());
    put(148, b"        ");
    put(156, b"0");
    put(257, b"ustar\0");
    put(263, b"00");
    put(265, b"root");
    put(297, b"root");
    let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
    header[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());

    let mut out = Vec::with_capacity(512 * 4);
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    out.resize(512 + data.len().div_ceil(512) * 512, 0);
    out.resize(out.len() + 1024, 0);
    out
}

// ---------------------------------------------------------------------------
// Building blocks.

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

fn u32_of(n: usize) -> u32 {
    u32::try_from(n).expect("fits in 32 bits")
}

/// Objects 2 (pages) and 3 (one empty US-letter page), recording offsets.
fn push_single_page_tree(out: &mut Vec<u8>, offsets: &mut [usize]) {
    offsets[2] = out.len();
    out.extend_from_slice(b"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n");
    offsets[3] = out.len();
    out.extend_from_slice(
        b"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << >> >>\nendobj\n",
    );
}

/// Raw deflate of `data` ending in a sync flush: non-final blocks only, byte
/// aligned, with no back-reference before its own start, so copies of it can
/// be concatenated inside any deflate stream.
fn deflate_sync_flushed(data: &[u8]) -> Vec<u8> {
    let mut compress = Compress::new(Compression::best(), false);
    let mut out = Vec::with_capacity(data.len() / 512 + 1024);
    loop {
        let consumed = usize::try_from(compress.total_in()).expect("in memory");
        compress
            .compress_vec(&data[consumed..], &mut out, FlushCompress::Sync)
            .expect("deflating into a Vec cannot fail");
        let consumed = usize::try_from(compress.total_in()).expect("in memory");
        if consumed == data.len() && out.len() < out.capacity() {
            return out;
        }
        out.reserve(out.capacity().max(1024));
    }
}

/// One stored deflate block (at most 65535 bytes), final or not.
fn push_stored_block(out: &mut Vec<u8>, data: &[u8], last: bool) {
    let len = u16::try_from(data.len()).expect("a stored block holds at most 65535 bytes");
    out.push(u8::from(last));
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
}

const ADLER_MOD: u64 = 65521;
const ADLER_INIT: u32 = 1;

fn adler32(adler: u32, data: &[u8]) -> u32 {
    let (mut a, mut b) = (u64::from(adler & 0xFFFF), u64::from(adler >> 16));
    // Reduced every 5552 bytes, zlib's bound for 32-bit sums (far inside 64).
    for chunk in data.chunks(5552) {
        for &byte in chunk {
            a += u64::from(byte);
            b += a;
        }
        a %= ADLER_MOD;
        b %= ADLER_MOD;
    }
    u32::try_from((b << 16) | a).expect("below 2^32")
}

/// The Adler-32 of `x ++ y` from those of `x` and `y` and the length of `y`.
fn adler32_combine(adler_x: u32, adler_y: u32, len_y: u64) -> u32 {
    let (ax, bx) = (u64::from(adler_x & 0xFFFF), u64::from(adler_x >> 16));
    let (ay, by) = (u64::from(adler_y & 0xFFFF), u64::from(adler_y >> 16));
    let len = len_y % ADLER_MOD;
    let a = (ax + ay + ADLER_MOD - 1) % ADLER_MOD;
    // B = Bx + By + len * (Ax - 1), all mod 65521.
    let b = (bx + by + len * ((ax + ADLER_MOD - 1) % ADLER_MOD)) % ADLER_MOD;
    u32::try_from((b << 16) | a).expect("below 2^32")
}

fn push_segment(out: &mut Vec<u8>, marker: u8, payload: &[u8]) {
    let len = u16::try_from(payload.len() + 2).expect("a JPEG segment holds at most 65533 bytes");
    out.extend_from_slice(&[0xFF, marker]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn ihdr(width: u32, height: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(13);
    data.extend_from_slice(&width.to_be_bytes());
    data.extend_from_slice(&height.to_be_bytes());
    // 8-bit RGBA, deflate, adaptive filtering, no interlace.
    data.extend_from_slice(&[8, 6, 0, 0, 0]);
    data
}

fn push_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32_of(data.len()).to_be_bytes());
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = Crc::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_be_bytes());
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
    encoder
        .write_all(data)
        .expect("writing to a Vec cannot fail");
    encoder.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    //! Structural checks made without the code under test: a small
    //! hand-written PDF/JPEG/PNG/ZIP/tar walker and an independent CRC-32
    //! and Adler-32.

    use super::*;
    use flate2::read::ZlibDecoder;
    use std::io::Read;

    /// Bitwise CRC-32 (IEEE), independent of flate2's.
    fn crc32(data: &[u8]) -> u32 {
        let mut table = [0u32; 256];
        for (n, slot) in table.iter_mut().enumerate() {
            let mut c = n as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *slot = c;
        }
        !data.iter().fold(!0u32, |c, &b| {
            table[((c ^ u32::from(b)) & 0xFF) as usize] ^ (c >> 8)
        })
    }

    /// Straightforward Adler-32 of the whole input.
    fn adler32_naive(data: &[u8]) -> u32 {
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        (b << 16) | a
    }

    fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
        haystack[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    }

    fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
        haystack.windows(needle.len()).rposition(|w| w == needle)
    }

    /// The integer after `key` in `dict`.
    fn dict_int(dict: &[u8], key: &str) -> usize {
        let at = find(dict, format!("{key} ").as_bytes(), 0).unwrap() + key.len() + 1;
        let digits: String = dict[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| char::from(b))
            .collect();
        digits.parse().unwrap()
    }

    fn startxref(pdf: &[u8]) -> usize {
        let at = rfind(pdf, b"startxref\n").unwrap() + b"startxref\n".len();
        let digits: String = pdf[at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| char::from(b))
            .collect();
        assert!(pdf.ends_with(b"%%EOF\n"));
        digits.parse().unwrap()
    }

    /// Every `N 0 obj` of a stream object: (number, dictionary, raw content).
    fn streams(pdf: &[u8]) -> Vec<(usize, &[u8], &[u8])> {
        let mut found = Vec::new();
        let mut from = 0;
        while let Some(at) = find(pdf, b">>\nstream\n", from) {
            let obj = rfind(&pdf[..at], b" 0 obj\n").unwrap();
            let line = rfind(&pdf[..obj], b"\n").map_or(0, |p| p + 1);
            let num: usize = std::str::from_utf8(&pdf[line..obj])
                .unwrap()
                .parse()
                .unwrap();
            let dict = &pdf[obj..at];
            let start = at + b">>\nstream\n".len();
            let end = start + dict_int(dict, "/Length");
            assert_eq!(&pdf[end..end + 11], b"\nendstream\n");
            found.push((num, dict, &pdf[start..end]));
            from = end;
        }
        found
    }

    /// Decoded xref stream entries (type, field 2, field 3) for /W [1 4 2].
    fn xref_entries(pdf: &[u8]) -> Vec<(u8, usize, u16)> {
        let at = startxref(pdf);
        let (_, dict, raw) = streams(&pdf[at..]).remove(0);
        assert!(find(dict, b"/Type /XRef", 0).is_some());
        assert!(find(dict, b"/W [1 4 2]", 0).is_some());
        assert_eq!(raw.len(), 7 * dict_int(dict, "/Size"));
        raw.chunks(7)
            .map(|e| {
                let f2 = u32::from_be_bytes(e[1..5].try_into().unwrap()) as usize;
                (e[0], f2, u16::from_be_bytes(e[5..7].try_into().unwrap()))
            })
            .collect()
    }

    fn check_bomb(pdf: &[u8], streams_wanted: usize, each_mib: usize, check_adler: bool) -> u64 {
        assert!(pdf.starts_with(b"%PDF-1.7\n"));
        let entries = xref_entries(pdf);
        assert_eq!(entries.len(), 5 + 2 * streams_wanted);
        assert_eq!(entries[0], (0, 0, 0xFFFF));
        for (num, &(kind, field2, field3)) in entries.iter().enumerate().skip(1) {
            match kind {
                1 => {
                    let header = format!("{num} 0 obj\n");
                    assert_eq!(&pdf[field2..field2 + header.len()], header.as_bytes());
                    assert_eq!(field3, 0);
                }
                2 => {
                    assert_eq!(entries[field2].0, 1, "container {field2} is a plain object");
                    assert_eq!(field3, 0);
                }
                other => panic!("entry {num} has type {other}"),
            }
        }
        let obj_streams: Vec<_> = streams(pdf)
            .into_iter()
            .filter(|(_, dict, _)| find(dict, b"/Type /ObjStm", 0).is_some())
            .collect();
        assert_eq!(obj_streams.len(), streams_wanted);
        // The catalog's /HostilePayload [a 0 R b 0 R …] names every string.
        let open = find(pdf, b"/HostilePayload [", 0).unwrap() + b"/HostilePayload [".len();
        let close = find(pdf, b"]", open).unwrap();
        let refs = std::str::from_utf8(&pdf[open..close]).unwrap();
        let payload: Vec<usize> = refs
            .split(" R")
            .filter_map(|r| r.trim().strip_suffix(" 0"))
            .map(|n| n.parse().unwrap())
            .collect();
        assert_eq!(payload.len(), streams_wanted);
        let mut total = 0u64;
        for (num, dict, raw) in obj_streams {
            assert!(find(dict, b"/Filter /FlateDecode", 0).is_some());
            assert_eq!(dict_int(dict, "/N"), 1);
            let first = dict_int(dict, "/First");
            // The contained string is listed in the xref as compressed in
            // this stream at index 0, and in the catalog's payload array.
            let string_num = num + streams_wanted;
            assert_eq!(entries[string_num], (2, num, 0));
            assert!(
                payload.contains(&string_num),
                "{string_num} in /HostilePayload"
            );
            if check_adler {
                let mut content = Vec::new();
                ZlibDecoder::new(raw).read_to_end(&mut content).unwrap();
                let header = format!("{string_num} 0 ");
                assert_eq!(first, header.len());
                assert_eq!(&content[..first], header.as_bytes());
                assert_eq!(content[first], b'(');
                assert_eq!(content.last(), Some(&b')'));
                assert!(
                    content[first + 1..content.len() - 1]
                        .iter()
                        .all(|&b| b == BOMB_FILL)
                );
                assert_eq!(content.len(), first + 2 + each_mib * MIB);
                let trailer = u32::from_be_bytes(raw[raw.len() - 4..].try_into().unwrap());
                assert_eq!(adler32_naive(&content), trailer);
                total += content.len() as u64;
            } else {
                let n = std::io::copy(&mut ZlibDecoder::new(raw), &mut std::io::sink()).unwrap();
                assert_eq!(n as usize, first + 2 + each_mib * MIB);
                assert!(n < (PDF_STREAM_LIMIT_MIB * MIB) as u64);
                total += n;
            }
        }
        total
    }

    #[test]
    fn adler_combine_matches_naive() {
        let (x, y) = (b"12 0 (".as_slice(), vec![BOMB_FILL; 100_000]);
        let whole = [x, &y[..]].concat();
        let combined = adler32_combine(adler32(1, x), adler32(1, &y), y.len() as u64);
        assert_eq!(combined, adler32_naive(&whole));
        assert_eq!(adler32(1, &whole), adler32_naive(&whole));
    }

    #[test]
    fn bomb_streams_inflate_to_the_declared_content() {
        let pdf = pdf_bomb_object_streams(3, 2);
        assert_eq!(check_bomb(&pdf, 3, 2, true), 3 * (2 * MIB as u64 + 6));
    }

    #[test]
    fn small_bomb_expands_to_about_200_mib() {
        let pdf = pdf_bomb_small();
        assert!(pdf.len() < 512 * 1024, "{} bytes", pdf.len());
        let total = check_bomb(&pdf, 8, 25, false);
        assert!(
            (200 * MIB as u64..201 * MIB as u64).contains(&total),
            "{total}"
        );
    }

    #[test]
    #[should_panic(expected = "under 64 MiB")]
    fn bomb_refuses_a_stream_over_the_limit() {
        let _ = pdf_bomb_object_streams(1, 64);
    }

    #[test]
    fn nested_pdf_has_the_depth_and_a_valid_xref() {
        let depth = 100_000;
        let pdf = pdf_deeply_nested(depth);
        let open = pdf.iter().filter(|&&b| b == b'[').count();
        let close = pdf.iter().filter(|&&b| b == b']').count();
        // Plus the page tree's /Kids and the page's /MediaBox.
        assert_eq!((open, close), (depth + 2, depth + 2));
        let run = "[".repeat(depth) + &"]".repeat(depth);
        assert!(find(&pdf, format!("/Nested {run} >>").as_bytes(), 0).is_some());
        let at = startxref(&pdf);
        let table = std::str::from_utf8(&pdf[at..]).unwrap();
        let mut lines = table.lines();
        assert_eq!(lines.next(), Some("xref"));
        assert_eq!(lines.next(), Some("0 4"));
        assert_eq!(lines.next(), Some("0000000000 65535 f "));
        for num in 1..4 {
            let line = lines.next().unwrap();
            assert_eq!(line.len(), 19);
            let offset: usize = line[..10].parse().unwrap();
            assert!(pdf[offset..].starts_with(format!("{num} 0 obj\n").as_bytes()));
        }
        assert_eq!(lines.next(), Some("trailer"));
    }

    /// JPEG segments up to SOS: (marker, payload), then the bytes after SOS.
    fn jpeg_segments(jpeg: &[u8]) -> (Vec<(u8, &[u8])>, &[u8]) {
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        let mut at = 2;
        let mut segments = Vec::new();
        loop {
            assert_eq!(jpeg[at], 0xFF);
            let marker = jpeg[at + 1];
            let len = usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
            assert!(len >= 2);
            segments.push((marker, &jpeg[at + 4..at + 2 + len]));
            at += 2 + len;
            if marker == 0xDA {
                return (segments, &jpeg[at..]);
            }
        }
    }

    fn check_jpeg(jpeg: &[u8], dims: (u16, u16), components: u8, comments: usize) {
        let (segments, rest) = jpeg_segments(jpeg);
        assert_eq!(segments[0].0, 0xE0);
        assert!(segments[0].1.starts_with(b"JFIF\0"));
        let markers: Vec<u8> = segments.iter().map(|s| s.0).collect();
        let n = markers.len();
        assert_eq!(n, comments + 5);
        assert!(markers[1..1 + comments].iter().all(|&m| m == 0xFE));
        assert_eq!(&markers[1 + comments..], &[0xDB, 0xC0, 0xC4, 0xDA]);
        assert_eq!(segments[1 + comments].1.len(), 65);
        let sof = segments[n - 3].1;
        assert_eq!(sof[0], 8);
        assert_eq!(u16::from_be_bytes([sof[1], sof[2]]), dims.1);
        assert_eq!(u16::from_be_bytes([sof[3], sof[4]]), dims.0);
        assert_eq!(sof[5], components);
        assert_eq!(sof.len(), 6 + 3 * usize::from(components));
        let dht = segments[n - 2].1;
        assert_eq!(dht.len(), 2 * 18);
        assert_eq!(segments[n - 1].1[0], components);
        // Scan data, no markers inside, then EOI.
        assert!(rest.len() > 2);
        assert!(!rest[..rest.len() - 2].contains(&0xFF));
        assert!(rest.ends_with(&[0xFF, 0xD9]));
    }

    #[test]
    fn jpeg_huge_dimensions_declares_65500_squared() {
        check_jpeg(&jpeg_huge_dimensions(), (65500, 65500), 3, 0);
    }

    #[test]
    fn jpeg_million_segments_has_them_all() {
        let jpeg = jpeg_million_segments();
        check_jpeg(&jpeg, (8, 8), 1, 1_000_000);
        assert!(jpeg.len() > 5_000_000);
    }

    /// PNG chunks: (type, data), checking every CRC.
    fn png_chunks(png: &[u8], independent_crc: bool) -> Vec<([u8; 4], &[u8])> {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let mut at = 8;
        let mut chunks = Vec::new();
        while at < png.len() {
            let len = u32::from_be_bytes(png[at..at + 4].try_into().unwrap()) as usize;
            let kind: [u8; 4] = png[at + 4..at + 8].try_into().unwrap();
            let data = &png[at + 8..at + 8 + len];
            let stored = u32::from_be_bytes(png[at + 8 + len..at + 12 + len].try_into().unwrap());
            let crc = if independent_crc {
                crc32(&png[at + 4..at + 8 + len])
            } else {
                let mut crc = Crc::new();
                crc.update(&png[at + 4..at + 8 + len]);
                crc.sum()
            };
            assert_eq!(crc, stored, "CRC of chunk {}", chunks.len());
            chunks.push((kind, data));
            at += 12 + len;
        }
        assert_eq!(at, png.len());
        chunks
    }

    #[test]
    fn png_huge_dimensions_is_well_formed() {
        let png = png_huge_dimensions();
        let chunks = png_chunks(&png, true);
        let kinds: Vec<&[u8; 4]> = chunks.iter().map(|c| &c.0).collect();
        assert_eq!(kinds, [b"IHDR", b"IDAT", b"IEND"]);
        let ihdr = chunks[0].1;
        assert_eq!(
            &ihdr[..8],
            &[0x7F, 0xFF, 0xFF, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(&ihdr[8..], &[8, 6, 0, 0, 0]);
        let mut idat = Vec::new();
        ZlibDecoder::new(chunks[1].1)
            .read_to_end(&mut idat)
            .unwrap();
        assert_eq!(idat, [0; 65]);
    }

    #[test]
    fn png_million_chunks_is_well_formed() {
        let png = png_million_chunks();
        let chunks = png_chunks(&png, false);
        assert_eq!(chunks.len(), 1_000_003);
        assert_eq!(&chunks[0].0, b"IHDR");
        assert_eq!(&chunks[0].1[..8], &[0, 0, 0, 1, 0, 0, 0, 1]);
        assert!(
            chunks[1..=1_000_000]
                .iter()
                .all(|c| &c.0 == b"tEXt" && c.1 == b"a\0b")
        );
        assert_eq!(&chunks[1_000_001].0, b"IDAT");
        assert_eq!(&chunks[1_000_002].0, b"IEND");
        let mut idat = Vec::new();
        ZlibDecoder::new(chunks[1_000_001].1)
            .read_to_end(&mut idat)
            .unwrap();
        assert_eq!(idat, [0, 0xFF, 0, 0, 0xFF]);
        // The independent CRC agrees on a small one too.
        assert_eq!(png_chunks(&png_many_chunks(3), true).len(), 6);
    }

    fn le16(b: &[u8], at: usize) -> usize {
        usize::from(u16::from_le_bytes([b[at], b[at + 1]]))
    }

    fn le32(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn zip_is_a_real_archive() {
        let zip = zip_named_pdf();
        let eocd = zip.len() - 22;
        assert_eq!(le32(&zip, eocd), 0x0605_4B50);
        assert_eq!((le16(&zip, eocd + 8), le16(&zip, eocd + 10)), (1, 1));
        let (cd_size, cd) = (
            le32(&zip, eocd + 12) as usize,
            le32(&zip, eocd + 16) as usize,
        );
        assert_eq!(cd + cd_size, eocd);
        assert_eq!(le32(&zip, cd), 0x0201_4B50);
        let name_len = le16(&zip, cd + 28);
        assert_eq!(
            &zip[cd + 46..cd + 46 + name_len],
            ARCHIVE_MEMBER_NAME.as_bytes()
        );
        let local = le32(&zip, cd + 42) as usize;
        assert_eq!(le32(&zip, local), 0x0403_4B50);
        assert_eq!(le16(&zip, local + 8), 0, "stored");
        let size = le32(&zip, local + 18) as usize;
        let start = local + 30 + le16(&zip, local + 26) + le16(&zip, local + 28);
        let data = &zip[start..start + size];
        assert_eq!(data, ARCHIVE_MEMBER_CONTENT);
        assert_eq!(start + size, cd);
        assert_eq!(le32(&zip, local + 14), crc32(data));
        assert_eq!(le32(&zip, cd + 16), crc32(data));
        assert_eq!(&zip[local + 14..local + 26], &zip[cd + 16..cd + 28]);
    }

    #[test]
    fn tar_is_a_real_ustar_archive() {
        let tar = tar_named_pdf();
        assert_eq!(tar.len() % 512, 0);
        let header = &tar[..512];
        assert_eq!(&header[257..265], b"ustar\x0000");
        assert_eq!(header[156], b'0');
        let octal = |field: &[u8]| {
            let text = std::str::from_utf8(field).unwrap();
            u64::from_str_radix(text.trim_matches(['\0', ' ']), 8).unwrap()
        };
        let mut blanked = header.to_vec();
        blanked[148..156].fill(b' ');
        let sum: u64 = blanked.iter().map(|&b| u64::from(b)).sum();
        assert_eq!(octal(&header[148..156]), sum);
        let size = octal(&header[124..136]) as usize;
        assert_eq!(&tar[512..512 + size], ARCHIVE_MEMBER_CONTENT);
        assert!(tar[512 + size..].iter().all(|&b| b == 0));
        assert!(tar.len() >= 512 + size + 1024);
        let name_end = header.iter().position(|&b| b == 0).unwrap();
        assert_eq!(&header[..name_end], ARCHIVE_MEMBER_NAME.as_bytes());
    }
}
