//! Why a view definition was refused or its partial states could not be computed.
//! The serving layer gives each kind its SQLSTATE.

use datafusion::error::DataFusionError;

/// Why a view definition was refused, or why planning or folding its partial states failed.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    /// The definition does not parse.
    #[error("{0}")]
    Syntax(String),
    /// The definition reads something that is not a source table.
    #[error("{0}")]
    UndefinedTable(String),
    /// The definition is inconsistent (a GROUP BY position out of range, a
    /// repeated output name).
    #[error("{0}")]
    InvalidDefinition(String),
    /// A column used outside an aggregate is not grouped.
    #[error("{0}")]
    Grouping(String),
    /// The definition cannot be maintained as mergeable partial states; the
    /// message names what to use instead.
    #[error("{0}")]
    Refused(String),
    /// Planning or running a partial-state query failed.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// Partial states of one view disagree with its partial schema.
    #[error("{0}")]
    Internal(String),
}

/// A result whose error is a [`ViewError`].
pub type Result<T> = std::result::Result<T, ViewError>;
