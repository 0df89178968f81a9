//! The one kind of tar header the relay writes, for sealed submissions and
//! for batches alike (`docs/format.md`): plain ustar (names are short
//! enough that no extension headers are needed), a regular file, owner 0,
//! mtime 0 (the received day is inside the testimony; nothing finer is
//! recorded), and the given mode.

use std::io;

/// A ustar header for a regular file at `path` with `size` bytes.
pub(crate) fn header(path: &str, size: u64, mode: u32) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    fill_header(&mut h, path, size, mode)?;
    Ok(h)
}

/// Fills `h` (a fresh ustar header, wherever the caller keeps it) as
/// [`header`] does.
pub(crate) fn fill_header(h: &mut tar::Header, path: &str, size: u64, mode: u32) -> io::Result<()> {
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(mode);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    Ok(())
}
