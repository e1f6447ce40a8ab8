//! Writing generated files: only files whose bytes changed are rewritten, so mtimes stay stable
//! and a no-op regeneration triggers no rebuild downstream (prost's `write_file_if_changed`).

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// What a write did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteStats {
    pub written: Vec<PathBuf>,
    pub unchanged: usize,
}

/// Writes `contents` to `path` unless the file already holds exactly these bytes. The new content
/// goes to a temporary file first and is renamed into place, so a reader never sees half a file.
pub fn write_if_changed(path: &Path, contents: &str) -> io::Result<bool> {
    if let Ok(old) = std::fs::read(path) {
        if old == contents.as_bytes() {
            return Ok(false);
        }
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!(
        "{}.tmp{}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(true)
}

/// Writes a set of files (paths relative to `root`).
pub fn write_files(root: &Path, files: &BTreeMap<String, String>) -> io::Result<WriteStats> {
    let mut stats = WriteStats::default();
    for (rel, text) in files {
        let p = root.join(rel);
        if write_if_changed(&p, text)? {
            stats.written.push(p);
        } else {
            stats.unchanged += 1;
        }
    }
    Ok(stats)
}
