//! Creating files and directories the careful way.
//!
//! Files holding secrets are created `0600` with `create_new` (never
//! following or replacing what is there) and synced; directories `0700`.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::Error;

/// Creates `path` (and missing parents) with mode 0700; an existing
/// directory is left as it is.
pub(crate) fn create_private_dir(path: &Path) -> Result<(), Error> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(Error::io("create directory", path))
}

/// Bytes an unprivileged process may still write on the file system that
/// holds `path` (`statvfs`: available blocks times the fragment size).
pub(crate) fn available_bytes(path: &Path) -> std::io::Result<u64> {
    let s = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Writes a new file with `mode`, refusing to replace an existing one, and
/// syncs it to disk.
pub(crate) fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    let mut f = create_new(path, mode)?;
    f.write_all(bytes).map_err(Error::io("write", path))?;
    f.sync_all().map_err(Error::io("sync", path))
}

/// Opens a new file for writing with `mode`, refusing to replace an existing
/// one.
pub(crate) fn create_new(path: &Path, mode: u32) -> Result<File, Error> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Exists(path.to_owned())
            } else {
                Error::Io {
                    action: "create",
                    path: path.to_owned(),
                    source: e,
                }
            }
        })
}

/// A fixed pool of files, made once and reused, so that nothing is created
/// or deleted per upload (a new file's inode would date it:
/// `docs/decisions.md`, "Storage that dates nothing").
///
/// [`FilePool::open`] makes (or reopens) `prefix-00` … in `dir`, `0600`,
/// and empties them; [`FilePool::take`] lends one out, and the loan
/// empties it again (`set_len(0)`, which frees its blocks) as it returns.
/// A crash leaves the files with whatever the loans had written: the next
/// [`FilePool::open`] empties them.
pub(crate) struct FilePool {
    free: std::sync::Mutex<Vec<File>>,
    returned: std::sync::Condvar,
    paths: Vec<std::path::PathBuf>,
}

impl std::fmt::Debug for FilePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FilePool")
            .field("files", &self.paths.len())
            .finish_non_exhaustive()
    }
}

impl FilePool {
    /// Opens `count` files named `prefix-NN` in `dir` (creating the missing
    /// ones) and empties them. Any other file in `dir` that starts with
    /// `prefix-` is left alone.
    pub(crate) fn open(dir: &Path, prefix: &str, count: usize) -> Result<Arc<Self>, Error> {
        create_private_dir(dir)?;
        let mut files = Vec::with_capacity(count);
        let mut paths = Vec::with_capacity(count);
        for i in 0..count {
            let path = dir.join(format!("{prefix}-{i:02}"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .map_err(Error::io("open a pool file", &path))?;
            files.push(file);
            paths.push(path);
        }
        Ok(Arc::new(Self {
            free: std::sync::Mutex::new(files),
            returned: std::sync::Condvar::new(),
            paths,
        }))
    }

    /// The pool's files (for the cover writes).
    pub(crate) fn paths(&self) -> &[std::path::PathBuf] {
        &self.paths
    }

    /// Lends out a file (empty, its cursor at 0), waiting up to `wait` for
    /// one to come back if all are out.
    pub(crate) fn take(self: &Arc<Self>, wait: std::time::Duration) -> Option<PooledFile> {
        let deadline = std::time::Instant::now() + wait;
        let mut free = self.free.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(file) = free.pop() {
                return Some(PooledFile {
                    file: Some(file),
                    pool: self.clone(),
                });
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return None;
            }
            free = self
                .returned
                .wait_timeout(free, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// How many files are not lent out.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A file on loan from a [`FilePool`]; emptied and returned on drop.
pub(crate) struct PooledFile {
    file: Option<File>,
    pool: Arc<FilePool>,
}

impl std::fmt::Debug for PooledFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PooledFile").finish_non_exhaustive()
    }
}

impl PooledFile {
    /// The file.
    pub(crate) fn file(&self) -> &File {
        // Present until drop (taken only there).
        self.file.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl Drop for PooledFile {
    fn drop(&mut self) {
        if let Some(mut file) = self.file.take() {
            use std::io::Seek;
            // Emptied before anyone else can take it. If that fails the
            // file is kept out of the pool (it would hand out old bytes),
            // and the pool is one smaller until the next start.
            if file.set_len(0).is_ok() && file.rewind().is_ok() {
                self.pool
                    .free
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(file);
                self.pool.returned.notify_one();
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_are_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("secret");
        write_new(&p, b"one", 0o600).unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(matches!(
            write_new(&p, b"two", 0o600),
            Err(Error::Exists(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"one");
        let d = dir.path().join("a/b");
        create_private_dir(&d).unwrap();
        assert_eq!(
            std::fs::metadata(&d).unwrap().permissions().mode() & 0o777,
            0o700
        );
    }

    #[test]
    fn a_pool_lends_empty_files_and_makes_none_per_loan() {
        let dir = tempfile::tempdir().unwrap();
        let pool = FilePool::open(dir.path(), "spool", 2).unwrap();
        let before: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(before.len(), 2);
        let a = pool.take(std::time::Duration::ZERO).unwrap();
        let b = pool.take(std::time::Duration::ZERO).unwrap();
        assert!(pool.take(std::time::Duration::from_millis(10)).is_none());
        let mut f = a.file();
        f.write_all(b"secret bytes").unwrap();
        drop(a);
        drop(b);
        assert_eq!(pool.available(), 2);
        for _ in 0..2 {
            let c = pool.take(std::time::Duration::ZERO).unwrap();
            assert_eq!(c.file().metadata().unwrap().len(), 0);
        }
        let after = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(after, 2);
        // Reopened (after a crash), leftovers are emptied.
        std::fs::write(&before[0], b"left by a crash").unwrap();
        let _pool = FilePool::open(dir.path(), "spool", 2).unwrap();
        assert_eq!(std::fs::metadata(&before[0]).unwrap().len(), 0);
    }
}
