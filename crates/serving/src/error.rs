//! The lower layers' errors as the [`QueryError`] (with its SQLSTATE) a
//! statement ends with. Functions rather than `From` impls: neither type is
//! this crate's.

use lambdadb_batch::BatchError;
use lambdadb_pgcompat::error::{QueryError, classify};
use lambdadb_views::ViewError;

/// A batch-layer failure: a file that does not fit an import is the user's
/// data (22000), the rest is storage (58030) or planning.
pub fn from_batch(e: BatchError) -> QueryError {
    match e {
        BatchError::DataFusion(d) => classify(&d),
        BatchError::Import(m) => QueryError::DataException(m),
        other => QueryError::Io(other.to_string()),
    }
}

/// A view definition refused or a partial-state computation failed.
pub fn from_view(e: ViewError) -> QueryError {
    match e {
        ViewError::Syntax(m) => QueryError::Syntax(m),
        ViewError::UndefinedTable(m) => QueryError::UndefinedTable(m),
        ViewError::InvalidDefinition(m) => QueryError::InvalidDefinition(m),
        ViewError::Grouping(m) => QueryError::Grouping(m),
        ViewError::Refused(m) => QueryError::FeatureNotSupported(m),
        ViewError::DataFusion(d) => classify(&d),
        ViewError::Internal(m) => QueryError::Internal(m),
    }
}
