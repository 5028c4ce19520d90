//! Where each object's files live under `data_dir`. SQL names never become
//! paths: a name is any text PostgreSQL accepts (`"a/b"`, `".."`, `"/x"`, spaces,
//! unicode), so each object's directory is named by a reversible encoding of it
//! ([`dir_name`]) under `sources/` or `views/`, and no name can reach outside
//! `data_dir` or into another object's directory.
//!
//! Decision: an encoding rather than ids recorded in the catalog. It needs no
//! mapping that could be lost or disagree with the files (a source declared in
//! `sql/` finds its archive from its name alone), it keeps the common names
//! (letters, digits, `_`) readable as they were, and an operator can read the
//! name back from the directory (`%2F` is `/`).

use std::path::{Path, PathBuf};

use lambdadb_pgcompat::{QueryError, Result};
use tracing::info;

/// The directory of materialized view `name`'s batch versions.
pub fn view_dir(data_dir: &Path, name: &str) -> Result<PathBuf> {
    object_dir(&data_dir.join("views"), name)
}

/// `name` as one directory name: ASCII letters, digits and `_` as they are, every
/// other byte as `%XX`. The result is never empty, `.` or `..`, and never holds
/// a `/`; distinct names give distinct results.
pub fn dir_name(name: &str) -> String {
    if name.is_empty() {
        // Not a valid `%XX` sequence, so it cannot be another name's encoding.
        return "%".into();
    }
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name of source `name`'s Delta table (its directory under
/// `data_dir/sources`, or its prefix in `master_url`): [`dir_name`] with `-`
/// for `%`, because table locations are URLs and `%2F` in one would be read
/// back as `/`. `-` never appears in [`dir_name`]'s output, so this stays
/// reversible. A directory from before, under the `%` name in
/// `local_sources`, is moved to the new name once.
pub fn table_name(local_sources: Option<&Path>, name: &str) -> Result<String> {
    let encoded = dir_name(name);
    let table = encoded.replace('%', "-");
    if let Some(root) = local_sources
        && table != encoded
    {
        move_once(&root.join(&encoded), &root.join(&table))?;
    }
    Ok(table)
}

/// Renames directory `old` to `new` if `old` exists and `new` does not yet:
/// the one-time move of a directory named by an earlier lambdadb.
fn move_once(old: &Path, new: &Path) -> Result<()> {
    if old.is_dir() && !new.exists() {
        std::fs::rename(old, new).map_err(|e| {
            QueryError::Io(format!(
                "cannot move {} to {}: {e}; move it by hand or free the name",
                old.display(),
                new.display()
            ))
        })?;
        info!(from = %old.display(), to = %new.display(), "moved an object's directory to its current name");
    }
    Ok(())
}

/// `parent/<dir_name(name)>`. Directories an earlier lambdadb named after the
/// raw name are renamed to the encoded name when the raw name was a single plain
/// path component (nothing else could have been created inside `parent`);
/// other raw names are never looked up, so a name cannot probe the file system.
fn object_dir(parent: &Path, name: &str) -> Result<PathBuf> {
    let dir = parent.join(dir_name(name));
    let plain_component = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains('/')
        && !name.contains('\0');
    if plain_component && name != dir_name(name) {
        move_once(&parent.join(name), &dir)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_stay_inside_their_parent() {
        for (name, dir) in [
            ("events", "events"),
            ("Events_2", "Events_2"),
            ("a/b", "a%2Fb"),
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("/tmp/victim", "%2Ftmp%2Fvictim"),
            ("a b", "a%20b"),
            ("%41", "%2541"),
            ("é", "%C3%A9"),
            ("", "%"),
        ] {
            assert_eq!(dir_name(name), dir, "{name}");
            let p = Path::new("/data/views").join(dir_name(name));
            assert_eq!(p.parent(), Some(Path::new("/data/views")), "{name}");
            assert_eq!(p.file_name().and_then(|f| f.to_str()), Some(dir), "{name}");
        }
        // `%` is always escaped, so an encoding is never another name's.
        assert_ne!(dir_name("%2F"), dir_name("/"));
        assert_eq!(table_name(None, "/tmp/x").unwrap(), "-2Ftmp-2Fx");
        assert_ne!(
            table_name(None, "-2F").unwrap(),
            table_name(None, "/").unwrap()
        );
    }

    #[test]
    fn legacy_directories_are_moved_once() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("views");
        std::fs::create_dir_all(parent.join("my view")).unwrap();
        std::fs::write(parent.join("my view/current.json"), b"{}").unwrap();
        let dir = object_dir(&parent, "my view").unwrap();
        assert_eq!(dir, parent.join("my%20view"));
        assert!(dir.join("current.json").exists());
        assert!(!parent.join("my view").exists());
        // Names that were never one component are not looked up.
        std::fs::create_dir_all(tmp.path().join("outside")).unwrap();
        let dir = object_dir(&parent, "../outside").unwrap();
        assert_eq!(dir, parent.join("%2E%2E%2Foutside"));
        assert!(tmp.path().join("outside").exists());
    }
}
