//! Crash-safe file replacement: temporary file, fsync, rename, fsync directory.
//!
//! Every step passes a named fault point `<point>.written`, `.synced`,
//! `.renamed`, `.dir_synced` (see `lambdadb_common::failpoint`), so the fault
//! suite can crash the process or fail the step with ENOSPC at each of them.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use lambdadb_common::failpoint;

use crate::{Result, io_err};

/// Passes fault point `<point>.<step>` (a no-op outside test builds).
pub fn step(point: &str, step: &str, path: &Path) -> Result<()> {
    failpoint::hit(&format!("{point}.{step}")).map_err(io_err(path))
}

/// Suffix of files being written; any left over after a crash are deleted.
pub const TMP_SUFFIX: &str = ".tmp";

/// Writes `bytes` to `path` so that after a crash `path` holds either its old
/// content or all of `bytes`.
/// `point` names the fault points of the steps.
pub fn write_atomic(path: &Path, bytes: &[u8], point: &str) -> Result<()> {
    let tmp = tmp_path(path);
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(bytes).map_err(io_err(&tmp))?;
    step(point, "written", &tmp)?;
    f.sync_all().map_err(io_err(&tmp))?;
    step(point, "synced", &tmp)?;
    drop(f);
    publish(&tmp, path, point)
}

/// Reads and parses JSON file `path`; a missing file is `None`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| crate::BatchError::Corrupt {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Renames a fully written and fsynced temporary file into place.
pub fn publish(tmp: &Path, path: &Path, point: &str) -> Result<()> {
    fs::rename(tmp, path).map_err(io_err(path))?;
    step(point, "renamed", path)?;
    sync_dir(path)?;
    step(point, "dir_synced", path)
}

/// The temporary name `path` is written under before [`publish`] renames it into place.
pub fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(TMP_SUFFIX);
    path.with_file_name(name)
}

fn sync_dir(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(dir))?;
    }
    Ok(())
}

/// Deletes leftover temporary files under `dir` (recursively).
pub fn remove_temporaries(dir: &Path) -> Result<usize> {
    let mut removed = 0;
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(0);
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            removed += remove_temporaries(&p)?;
        } else if p.to_string_lossy().ends_with(TMP_SUFFIX) {
            fs::remove_file(&p).map_err(io_err(&p))?;
            removed += 1;
        }
    }
    Ok(removed)
}
