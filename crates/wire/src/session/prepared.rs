//! What a statement becomes once parsed (`Prepared`) and what running it
//! produced (`Outcome`).

use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;

use lambdadb_serving::ddl::CatalogStatement;
use lambdadb_serving::insert::InsertStatement;

use super::copy::CopyFormat;

/// What a statement produced.
pub enum Outcome {
    /// Rows of a query or `SHOW`, sent as DataRow messages.
    Rows {
        /// The result columns.
        schema: SchemaRef,
        /// The rows, produced as they are sent.
        stream: SendableRecordBatchStream,
    },
    /// Rows to send as COPY data.
    Copy {
        /// The columns of the copied rows.
        schema: SchemaRef,
        /// The rows to copy, produced as they are sent.
        stream: SendableRecordBatchStream,
        /// How the rows are written.
        format: CopyFormat,
    },
    /// A statement that returns no rows, with its command tag (empty for an empty query).
    Command(String),
    /// A transaction block began.
    Begin,
    /// The transaction block was committed.
    Commit,
    /// The transaction block was rolled back (also the answer to COMMIT of a failed block).
    Rollback,
}

/// A statement parsed and classified, ready to describe and execute.
#[derive(Clone)]
pub enum Prepared {
    /// A statement of the catalog (source tables, materialized views, REFRESH, imports),
    /// run by the engine; it needs the admin role.
    Catalog(CatalogStatement),
    /// A statement with nothing to do but answer its command tag (`SAVEPOINT`, `RELEASE`).
    Command(String),
    /// `BEGIN` / `START TRANSACTION`: opens a transaction block.
    Begin,
    /// `COMMIT`: ends the transaction block (rolling it back if it failed).
    Commit,
    /// `ROLLBACK`: ends the transaction block.
    Rollback,
    /// `ROLLBACK TO SAVEPOINT`: stays in the block, leaving its aborted state if it failed.
    RollbackToSavepoint,
    /// `SHOW name` or `SHOW ALL`, the name's words joined by spaces.
    Show(String),
    /// `SET name = value`; `None` for forms lambdadb accepts and ignores.
    Set(Option<(String, String)>),
    /// `RESET name`, or everything (`RESET ALL`, `DISCARD ALL`).
    Reset(Option<String>),
    /// `COPY (query) TO STDOUT`.
    Copy {
        /// The query whose rows are copied, re-planned when the COPY runs.
        query: Box<Prepared>,
        /// How the rows are written.
        format: CopyFormat,
    },
    /// Planned by DataFusion; re-planned at every execution so that system tables
    /// and snapshots are current.
    Query {
        /// The statement's text after the rewrites: the cache key, and what it is re-planned from.
        sql: String,
        /// The plan made at preparation, which gives the parameter and result types.
        plan: LogicalPlan,
    },
    /// `CREATE [OR REPLACE] VIEW` / `DROP VIEW` (plain views).
    CreatePlainView {
        /// The view's name: the last part of the name as written, without quotes.
        name: String,
        /// The SELECT text after `AS`, as parsed and printed back.
        query: String,
        /// With `OR REPLACE`: an existing plain view of that name takes the new definition.
        or_replace: bool,
    },
    /// `DROP VIEW [IF EXISTS] names` (plain views).
    DropPlainViews {
        /// The views to drop, each the last part of its name without quotes.
        names: Vec<String>,
        /// With `IF EXISTS`: a name no plain view has is skipped rather than refused.
        if_exists: bool,
    },
    /// `INSERT INTO <source> [(columns)] <query>`: produced to the topic.
    Insert(InsertStatement),
    /// A text without statements (only comments or semicolons), answered with
    /// EmptyQueryResponse.
    Empty,
}
