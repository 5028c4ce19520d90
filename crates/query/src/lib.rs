//! The unified query layer: source tables and materialized views as DataFusion
//! tables whose answers merge the batch part (archive, batch view versions) with
//! the speed part (in-memory rows) exactly at a Kafka offset watermark; the
//! catalog statements lambdadb adds to SQL; and the per-connection [`Session`].
//!
//! Depends on `batch` and `speed`, which never depend on each other; the wire
//! frontend depends on this crate.

pub mod catalog;
pub mod catalog_log;
pub mod copy;
pub mod datetrunc;
pub mod ddl;
pub mod decompose;
pub mod engine;
pub mod error;
pub mod freshness;
pub mod fromfuncs;
pub mod infoschema;
pub mod insert;
pub mod naming;
pub mod pg;
pub mod pgfuncs;
pub mod pgtype;
pub mod pgtyping;
pub mod plainview;
pub mod prepared;
pub mod resultcache;
pub mod rewrite;
pub mod session;
pub mod sketches;
pub mod source;
pub mod statements;
pub mod system;
pub mod tables;
pub mod vars;
pub mod view;
pub mod viewspeed;

pub use engine::Engine;
pub use error::{QueryError, Result};
pub use session::{Outcome, Prepared, SERVER_VERSION, Session};
