//! Recursive listings of a directory tree.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Every path below `dir` (directories, files and symbolic links, `dir`
/// itself not included), sorted. Symbolic links are listed, never followed.
///
/// An absent `dir` is empty, and an entry that vanishes while the tree is
/// read (a running relay removes files) is left out: only what exists is
/// listed. Any other error fails the test.
pub fn paths(dir: &Path) -> Vec<PathBuf> {
    walk(dir).into_iter().map(|(path, _)| path).collect()
}

/// Every file below `dir`: [`paths`] but the directories (symbolic links
/// are included, as links).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|(_, is_dir)| !is_dir)
        .map(|(path, _)| path)
        .collect()
}

/// Every path below `dir`, sorted, and whether it is a directory.
fn walk(dir: &Path) -> Vec<(PathBuf, bool)> {
    let gone = |e: &std::io::Error| e.kind() == ErrorKind::NotFound;
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(entries) => entries,
            Err(e) if gone(&e) => continue,
            Err(e) => panic!("cannot list {}: {e}", d.display()),
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) if gone(&e) => continue,
                Err(e) => panic!("cannot list {}: {e}", d.display()),
            };
            let path = entry.path();
            let is_dir = match entry.file_type() {
                Ok(t) => t.is_dir(),
                Err(e) if gone(&e) => continue,
                Err(e) => panic!("cannot stat {}: {e}", path.display()),
            };
            if is_dir {
                todo.push(path.clone());
            }
            out.push((path, is_dir));
        }
    }
    out.sort();
    out
}
