//! Which server files `COPY t FROM '/path' (FORMAT parquet)` may read: only
//! those inside the configured `import_dir`, so that no SQL statement, not even
//! an admin's, reaches other files of the server.

use std::path::{Component, Path, PathBuf};

use lambdadb_pgcompat::{QueryError, Result};

/// `path` resolved (symbolic links followed) when it lies inside
/// `import_dir`: SQL never reads other server files.
pub fn importable(root: &Path, path: &Path) -> Result<PathBuf> {
    if root.as_os_str().is_empty() {
        return Err(QueryError::InsufficientPrivilege(
            "COPY FROM a server file is off: set import_dir in the configuration to the directory holding the files to import".into(),
        ));
    }
    let outside = || {
        QueryError::InsufficientPrivilege(format!(
            "{} is not inside import_dir ({}); put the files to import there",
            path.display(),
            root.display()
        ))
    };
    let written = std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf());
    let root = std::fs::canonicalize(root)
        .map_err(|e| QueryError::Io(format!("import_dir {} is not usable: {e}", root.display())))?;
    // Only paths inside import_dir as written are looked at, so a statement
    // cannot tell which other server paths exist; then symbolic links are
    // resolved and the result checked again.
    if !lexically_inside(path, &written) && !lexically_inside(path, &root) {
        return Err(outside());
    }
    let resolved = std::fs::canonicalize(path)
        .map_err(|e| QueryError::Io(format!("cannot read {}: {e}", path.display())))?;
    if !resolved.starts_with(&root) {
        return Err(outside());
    }
    Ok(resolved)
}

/// Whether `path` (absolute) names something under `root` once `.` and `..`
/// are applied, without touching the file system.
fn lexically_inside(path: &Path, root: &Path) -> bool {
    let mut normal = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal.starts_with(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_inside_import_dir() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("imports");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.parquet"), b"x").unwrap();
        std::fs::write(tmp.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), root.join("link")).unwrap();
        let code = |p: &Path| importable(&root, p).map(|_| ()).unwrap_err().sqlstate();

        assert!(importable(&root, &root.join("sub/a.parquet")).is_ok());
        assert!(importable(&root, &root.join("sub/../sub/a.parquet")).is_ok());
        assert_eq!(code(&tmp.path().join("secret")), "42501");
        assert_eq!(code(&root.join("../secret")), "42501");
        assert_eq!(code(&root.join("link")), "42501", "a link out is followed");
        assert_eq!(code(Path::new("/etc/passwd")), "42501");
        // Outside: refused before the file system is asked, so existence is not told.
        assert_eq!(code(Path::new("/no/such/file")), "42501");
        // Inside: a missing file is said to be missing.
        assert_eq!(code(&root.join("missing.parquet")), "58030");
        assert_eq!(
            importable(Path::new(""), &root.join("sub/a.parquet"))
                .unwrap_err()
                .sqlstate(),
            "42501"
        );
    }
}
