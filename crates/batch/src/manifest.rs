//! The manifest of one source's master dataset.

use std::path::Path;

use lambdadb_common::{Fingerprint, PartitionId, Watermark};
use serde::{Deserialize, Serialize};

use crate::Result;

/// One archived Parquet file: the rows of `partition` consumed in
/// `[first_offset, next_offset)` (rejected messages leave gaps).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveFile {
    /// Path relative to the source's directory.
    pub path: String,
    /// Kafka partition of the rows ([`crate::IMPORT_PARTITION`] for imported files).
    pub partition: PartitionId,
    /// First offset the file covers.
    pub first_offset: i64,
    /// One past the last offset the file covers.
    pub next_offset: i64,
    /// Rows in the file.
    pub rows: u64,
    /// Size of the file on disk.
    pub bytes: u64,
    /// For an imported file: the content hash of the file it was imported
    /// from, which makes importing the same content again a no-op.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub imported_from: Option<ImportedFrom>,
    /// The smallest and largest event time of the rows, in milliseconds since
    /// the epoch (retention drops a file once all of it is older than the
    /// limit); `None` without an event-time column or rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time_ms: Option<(i64, i64)>,
}

/// The file an imported master-dataset file was rewritten from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportedFrom {
    /// The path it was imported from (for messages; identity is the hash).
    pub name: String,
    /// xxh3-64 of its bytes, as 16 hex digits.
    pub hash: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Files of the master dataset and the offsets they cover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Bumped by every commit (archive or import); 0 before the first one.
    pub version: u64,
    /// Everything below is archived (or was rejected and is recorded as such).
    pub watermark: Watermark,
    /// Every file of the master dataset, in commit order.
    pub files: Vec<ArchiveFile>,
    /// The last archived message of each partition (see `Fingerprint`).
    #[serde(default)]
    pub fingerprints: std::collections::BTreeMap<PartitionId, Fingerprint>,
}

/// File name of the manifest of a master dataset from before Delta tables;
/// read once, to move its files into the Delta log.
pub const MANIFEST_FILE: &str = "manifest.json";

impl Manifest {
    /// Loads a pre-Delta `dir/manifest.json`, if there is one.
    pub fn load_legacy(dir: &Path) -> Result<Option<Self>> {
        crate::durable::read_json(&dir.join(MANIFEST_FILE))
    }

    /// Relative paths of the files with offsets at or above `from` (whole
    /// files: file boundaries are always at watermarks that some commit recorded).
    pub fn files_from<'a>(&'a self, from: &'a Watermark) -> impl Iterator<Item = &'a ArchiveFile> {
        self.files
            .iter()
            .filter(|f| f.first_offset >= from.next(f.partition))
    }

    /// `partition`'s files at or above offset `from`.
    pub fn partition_files_from(
        &self,
        partition: PartitionId,
        from: i64,
    ) -> impl Iterator<Item = &ArchiveFile> {
        self.files
            .iter()
            .filter(move |f| f.partition == partition && f.first_offset >= from)
    }

    /// Rows in the master dataset (all files).
    pub fn rows(&self) -> u64 {
        self.files.iter().map(|f| f.rows).sum()
    }

    /// Bytes the master dataset's files take on disk.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}
