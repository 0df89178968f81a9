//! File-system helpers: private files that never overwrite, durable
//! directories, and a reader that hashes what passes through it.
//!
//! Everything the reviewer writes is either decrypted testimony or key
//! material, so files are created `0600` with `create_new` (an existing
//! file is an error, never overwritten) and directories `0700`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::Path;

use format::Digest;
use sha2::{Digest as _, Sha256};

use crate::Error;

/// Creates a new file readable only by its owner. Fails if `path` exists
/// (including as a symlink, which is not followed).
pub(crate) fn create_private_file(path: &Path) -> Result<File, Error> {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            Error::AlreadyExists { path: path.into() }
        } else {
            Error::io("create", path, e)
        }
    })
}

/// Creates one new directory accessible only by its owner; fails if it
/// exists.
pub(crate) fn create_private_dir(path: &Path) -> io::Result<()> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
}

/// Creates `path` and its missing parents (new ones `0700`); an existing
/// directory is fine.
pub(crate) fn ensure_dir(path: &Path) -> Result<(), Error> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path)
        .map_err(|e| Error::io("create directory", path, e))
}

/// Replaces `path` (a file in `dir`) with `bytes` atomically: a temporary
/// file (`0600`) in `dir`, flushed, renamed over `path`, then the directory
/// flushed. A reader sees the old content or the new, never a mix.
pub(crate) fn replace_file(dir: &Path, path: &Path, bytes: &[u8]) -> Result<(), Error> {
    use std::io::Write as _;
    ensure_dir(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".replace-")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(|e| Error::io("create a temporary file in", dir, e))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", tmp.path().to_path_buf(), e))?;
    tmp.persist(path)
        .map_err(|e| Error::io("replace", path, e.error))?;
    sync_dir(dir)
}

/// Flushes a directory's entries (new names, renames) to disk.
pub(crate) fn sync_dir(path: &Path) -> Result<(), Error> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io("flush directory", path, e))
}

/// Flushes every file and directory under `root` (and `root` itself) to
/// disk, several at a time.
///
/// `reviewer open` writes a whole batch into a staging directory without
/// flushing file by file, then calls this once before moving anything into
/// place: the same durability as one `fsync` per file, but the file system
/// can merge concurrent flushes instead of one per file in turn (10,000
/// small submissions meant ~70,000 sequential flushes).
/// Symlinks are neither followed nor flushed (nothing here creates one).
pub(crate) fn sync_tree(root: &Path) -> Result<(), Error> {
    // On Linux one `syncfs` flushes every dirty file and directory of the
    // file system at once: for a batch of 10,000 submissions (40,000 files
    // and directories) that is one flush instead of 40,000.
    #[cfg(target_os = "linux")]
    {
        let dir = File::open(root).map_err(|e| Error::io("flush", root, e))?;
        rustix::fs::syncfs(&dir).map_err(|e| Error::io("flush", root, e.into()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        sync_tree_each(root)
    }
}

/// [`sync_tree`] where there is no `syncfs`: every file and directory.
#[cfg(any(not(target_os = "linux"), test))]
fn sync_tree_each(root: &Path) -> Result<(), Error> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const WORKERS: usize = 8;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(|e| Error::io("list", &dir, e))? {
            let entry = entry.map_err(|e| Error::io("list", &dir, e))?;
            let kind = entry
                .file_type()
                .map_err(|e| Error::io("inspect", entry.path(), e))?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                files.push(entry.path());
            }
        }
        dirs.push(dir);
    }
    // Files first, then directories deepest first, so that a directory's
    // entries are flushed after what they name.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for batch in [files, dirs] {
        let next = AtomicUsize::new(0);
        let failed: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..WORKERS.min(batch.len()) {
                scope.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(path) = batch.get(i) else { break };
                        if let Err(e) = File::open(path).and_then(|f| f.sync_all()) {
                            let mut slot = failed.lock().unwrap_or_else(|p| p.into_inner());
                            slot.get_or_insert(Error::io("flush", path, e));
                            break;
                        }
                    }
                });
            }
        });
        if let Some(e) = failed.into_inner().unwrap_or_else(|p| p.into_inner()) {
            return Err(e);
        }
    }
    Ok(())
}

/// `true` if something (a file, directory or dangling symlink) is at `path`.
pub(crate) fn exists_no_follow(path: &Path) -> Result<bool, Error> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(Error::io("inspect", path, e)),
    }
}

/// Reads at most `max` bytes of a small file (keys, tokens, receipts).
///
/// The buffer is sized from the file's length up front so that reading a
/// secret does not reallocate (which would leave copies behind in freed
/// memory that the caller's zeroizing cannot reach).
pub(crate) fn read_small(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    let file = File::open(path).map_err(|e| Error::io("read", path, e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0).min(max);
    let mut out = Vec::with_capacity(usize::try_from(len).unwrap_or(0).saturating_add(1));
    file.take(max + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io("read", path, e))?;
    if out.len() as u64 > max {
        return Err(Error::io(
            "read",
            path,
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the file is larger than {max} bytes"),
            ),
        ));
    }
    Ok(out)
}

/// A reader that computes the SHA-256 and length of everything read
/// through it, and remembers whether the underlying reader failed.
#[derive(Debug)]
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
    failed: Option<io::ErrorKind>,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            count: 0,
            failed: None,
        }
    }

    /// The kind of the first error the underlying reader returned.
    pub(crate) fn failure(&self) -> Option<io::ErrorKind> {
        self.failed
    }

    /// Reads the rest of the input (hashing it) and returns the digest and
    /// total length.
    pub(crate) fn finish(mut self) -> io::Result<(Digest, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((Digest::from_hasher(self.hasher), self.count))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                if e.kind() != io::ErrorKind::Interrupted && self.failed.is_none() {
                    self.failed = Some(e.kind());
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_new_and_0600() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        drop(create_private_file(&p).unwrap());
        assert!(matches!(
            create_private_file(&p),
            Err(Error::AlreadyExists { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[cfg(unix)]
    #[test]
    fn create_private_file_does_not_follow_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, b"keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_private_file(&link).is_err());
        assert_eq!(fs::read(&target).unwrap(), b"keep");
    }

    #[test]
    fn hashing_reader_hashes_everything() {
        let data = vec![5u8; 100_000];
        let mut r = HashingReader::new(&data[..]);
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        let (digest, len) = r.finish().unwrap();
        assert_eq!(len, 100_000);
        assert_eq!(digest, Digest::of(&data));
    }

    #[test]
    fn read_small_caps() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        fs::write(&p, b"12345").unwrap();
        assert_eq!(read_small(&p, 5).unwrap(), b"12345");
        assert!(read_small(&p, 4).is_err());
    }

    #[test]
    fn sync_tree_flushes_a_nested_tree_and_skips_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("staging");
        fs::create_dir_all(root.join("a/b/c")).unwrap();
        for i in 0..50 {
            fs::write(root.join(format!("a/b/{i}.txt")), b"x").unwrap();
        }
        fs::write(root.join("a/b/c/deep"), b"y").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink("/nonexistent/target", root.join("a/link")).unwrap();
        sync_tree(&root).unwrap();
        sync_tree_each(&root).unwrap();
        // A tree that vanished is an error naming the path, not a panic.
        let gone = dir.path().join("gone");
        assert!(sync_tree(&gone).unwrap_err().to_string().contains("gone"));
        assert!(
            sync_tree_each(&gone)
                .unwrap_err()
                .to_string()
                .contains("gone")
        );
    }
}
