//! The view algebra: a materialized view's definition as mergeable partial
//! states, which is what lets the batch and speed layers share one SQL
//! definition.
//!
//! - [`decompose`] splits a definition into a partial-state query, a merge query
//!   and a combine query, or refuses it with an error naming what to use instead;
//! - [`sketches`] are the mergeable states of `approx_distinct` and
//!   `approx_percentile_cont`;
//! - [`plan::ViewPlan`] plans a decomposition once and binds each query's
//!   snapshot into the merge;
//! - [`fold::Folder`] keeps the speed layer's partial states, folding new events.
//!
//! It knows DataFusion and SQL only: nothing of Kafka, offsets, storage, the wire
//! or PostgreSQL's types (the serving layer hands it a context with the
//! dialect's functions), and it imports no other lambdadb crate. Unit tests sit
//! beside the code (`decompose_tests.rs`, `sketches.rs`); the view oracle in
//! `integration/test_view_oracle.py` checks the algebra end to end.

#![warn(missing_docs)]

pub mod decompose;
pub mod error;
pub mod fold;
pub mod plan;
pub mod sketches;
pub mod volatile;

pub use decompose::{BATCH_PARTS, Decomposition, SPEED_PARTS, decompose};
pub use error::{Result, ViewError};
pub use fold::{COMPACT_AT, Folder, conform};
pub use plan::ViewPlan;
