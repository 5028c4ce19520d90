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
    Rows {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
    },
    /// Rows to send as COPY data.
    Copy {
        schema: SchemaRef,
        stream: SendableRecordBatchStream,
        format: CopyFormat,
    },
    Command(String),
    Begin,
    Commit,
    Rollback,
}

/// A statement parsed and classified, ready to describe and execute.
#[derive(Clone)]
pub enum Prepared {
    Catalog(CatalogStatement),
    Command(String),
    Begin,
    Commit,
    Rollback,
    RollbackToSavepoint,
    Show(String),
    /// `SET name = value`; `None` for forms lambdadb accepts and ignores.
    Set(Option<(String, String)>),
    /// `RESET name`, or everything (`RESET ALL`, `DISCARD ALL`).
    Reset(Option<String>),
    /// `COPY (query) TO STDOUT`.
    Copy {
        query: Box<Prepared>,
        format: CopyFormat,
    },
    /// Planned by DataFusion; re-planned at every execution so that system tables
    /// and snapshots are current.
    Query {
        sql: String,
        plan: LogicalPlan,
    },
    /// `CREATE [OR REPLACE] VIEW` / `DROP VIEW` (plain views).
    CreatePlainView {
        name: String,
        query: String,
        or_replace: bool,
    },
    DropPlainViews {
        names: Vec<String>,
        if_exists: bool,
    },
    /// `INSERT INTO <source> [(columns)] <query>`: produced to the topic.
    Insert(InsertStatement),
    Empty,
}
