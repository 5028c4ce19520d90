//! PostgreSQL's dialect over DataFusion: what makes a DataFusion session answer
//! like PostgreSQL 15 to psql, drivers and BI tools.
//!
//! It owns the `pg_catalog` and `information_schema` schemas ([`pg`],
//! [`pgshared`], [`infoschema`]), the mapping between Arrow and PostgreSQL types
//! ([`pgtype`]) and PostgreSQL's result types for DataFusion's functions
//! ([`pgtyping`], [`datetrunc`]), the functions clients call ([`pgfuncs`]) and
//! the bounds on their size arguments ([`bounds`]), session settings
//! (GUCs, [`vars`], [`setshow`]), identifier and column-name rules ([`naming`]),
//! the SQL rewrites clients' queries need ([`parse`], [`rewrite`],
//! [`fromfuncs`]), and the SQLSTATE of every error ([`error`]).
//!
//! It knows nothing of Kafka, offsets, views or the wire protocol: it may import
//! `lambdadb-common` (for size units) but no other lambdadb crate. Unit tests
//! sit beside the code; `integration/test_pg_compare.py` and its siblings
//! compare the whole dialect with a real PostgreSQL 15.

#![warn(missing_docs)]

pub mod bounds;
pub mod datetrunc;
pub mod error;
pub mod fromfuncs;
pub mod infoschema;
pub mod naming;
pub mod parse;
pub mod pg;
pub mod pgfuncs;
pub mod pgshared;
pub mod pgtype;
pub mod pgtyping;
pub mod rewrite;
pub mod setshow;
pub mod vars;

pub use error::{QueryError, Result, classify};
