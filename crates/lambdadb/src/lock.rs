//! One process per `data_dir`: two servers archiving into the same master
//! dataset would each believe their manifest is the only one. Like PostgreSQL's
//! `postmaster.pid`, `data_dir/lambdadb.pid` names the owner; the exclusion itself
//! is an advisory lock the operating system drops when the process ends, however
//! it ends, so a lock file left by a killed server is simply taken over.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, bail};
use tracing::info;

/// Held for the life of the process; dropping it releases the directory.
pub struct DataDirLock {
    _file: File,
}

const FILE: &str = "lambdadb.pid";

impl DataDirLock {
    /// Takes `dir` for this process, or explains who holds it.
    pub fn acquire(dir: &Path, listen: &str) -> anyhow::Result<Self> {
        let path = dir.join(FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => bail!(
                "data directory {} is in use by another lambdadb ({}); stop that server or give this one another --data-dir",
                dir.display(),
                describe(&previous)
            ),
            Err(TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        if !previous.trim().is_empty() {
            info!(previous = %describe(&previous), "taking over the data directory from a server that is no longer running");
        }
        let owner = format!("{}\n{listen}\n", std::process::id());
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(owner.as_bytes())?;
        file.sync_all()?;
        Ok(Self { _file: file })
    }
}

/// "pid 123, listening on 127.0.0.1:5433" from the file's lines.
fn describe(contents: &str) -> String {
    let mut lines = contents.lines();
    match (lines.next(), lines.next()) {
        (Some(pid), Some(listen)) => format!("pid {pid}, listening on {listen}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => "owner unknown".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path(), "127.0.0.1:1").unwrap();
        let e = DataDirLock::acquire(dir.path(), "127.0.0.1:2")
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("in use by another lambdadb"), "{e}");
        assert!(e.contains(&format!("pid {}", std::process::id())), "{e}");
        assert!(e.contains("127.0.0.1:1"), "{e}");
        drop(first);
        let _again = DataDirLock::acquire(dir.path(), "127.0.0.1:3").unwrap();
        let text = std::fs::read_to_string(dir.path().join(FILE)).unwrap();
        assert!(text.ends_with("127.0.0.1:3\n"), "{text}");
    }
}
