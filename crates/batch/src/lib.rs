//! The batch layer: the immutable master dataset (Parquet files per source table,
//! named by partition and offset range, listed in a Delta Lake table's log on
//! local disk or S3) and batch view versions recomputed from a snapshot with
//! DataFusion.
//!
//! Every commit follows the same discipline: write a temporary file, fsync,
//! rename (or upload), then record it in a Delta commit (see [`deltalog`]). A
//! file that no commit lists does not exist for readers and is removed at start-up.
//!
//! It imports only `common`: never `speed`, `cache`, `views` or anything above
//! (a batch view run is given its partial query and a planning context by the
//! serving layer). Unit tests sit beside the code; restarts and imports are
//! tested end to end in `integration/`.

#![warn(missing_docs)]

pub mod archive;
pub mod compact;
pub mod deltalog;
pub mod durable;
pub mod engine;
pub mod files;
pub mod history;
pub mod import;
pub mod lease;
pub mod manifest;
mod retention;
pub mod shared;
pub mod store;
mod timebounds;
pub mod view;
pub mod viewshare;

pub use archive::{ArchiveInput, Archiver};
pub use compact::{CompactPolicy, CompactSummary, KeepOffsets};
pub use engine::{BatchEngine, LocalEngine};
pub use files::{TableFile, files_table};
pub use history::{RefreshKind, VersionPolicy, ViewHistory, ViewVersion};
pub use import::{IMPORT_PARTITION, ImportSummary, import_paths};
pub use lease::{Lease, LeaseRecord, LeaseState};
pub use manifest::{ArchiveFile, ImportedFrom, Manifest};
pub use shared::{Fetched, SharedObject};
pub use store::{LogPolicy, MasterLocation, S3Settings, TableStore};
pub use view::{MAX_CHAIN, ViewRun, ViewStore};
pub use viewshare::SharedViews;

/// Errors of the batch layer.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// A file or directory operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: std::path::PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A manifest or a view's current-version file cannot be parsed.
    #[error("corrupt metadata {path}: {message}")]
    Corrupt {
        /// The metadata file.
        path: std::path::PathBuf,
        /// What the JSON parser reported.
        message: String,
    },
    /// A file to import does not fit the table.
    #[error("{0}")]
    Import(String),
    /// The master dataset's location or store cannot be used as configured.
    #[error("{0}")]
    Config(String),
    /// Reading or committing the Delta log failed.
    #[error("Delta log: {0}")]
    Delta(String),
    /// Reading or writing a Parquet file failed.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// DataFusion failed to plan or run a batch view's partial query.
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
}

/// The result of batch-layer operations.
pub type Result<T> = std::result::Result<T, BatchError>;

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A background task that panicked or was cancelled, as a batch error.
pub(crate) fn join_err(e: tokio::task::JoinError) -> BatchError {
    BatchError::Io {
        path: std::path::PathBuf::from("(background task)"),
        source: std::io::Error::other(e.to_string()),
    }
}

pub(crate) fn io_err(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> BatchError + '_ {
    move |source| BatchError::Io {
        path: path.to_path_buf(),
        source,
    }
}
