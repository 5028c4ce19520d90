//! The serving layer: every source table and materialized view of one process,
//! presented as DataFusion tables whose answers merge the batch part (archive
//! files, batch view versions) with the speed part (in-memory rows, folded
//! partial states) exactly at a Kafka offset vector.
//!
//! It owns the [`Engine`] (sources, views, consumers, background archiving,
//! folding and refresh), each source's consistent state ([`source`]), the unified
//! table providers ([`tables`], [`snapshot`]), materialized and plain views'
//! state ([`view`], [`viewspeed`], [`plainview`]), the catalog and its DDL
//! ([`catalog`], [`ddl`], [`alter`], [`catalog_log`]), the system tables ([`system`]), the
//! result cache's serving side ([`resultcache`]), INSERT ([`insert`]), where
//! objects' files live ([`layout`]) and which files imports may read
//! ([`importdir`]), the shared memory pools ([`memory`]) and the background
//! archiving, folding and refresh ([`background`]), and on a shared store who
//! writes ([`writer`]) and how the others follow ([`replication`]).
//!
//! It builds on `batch`, `speed`, `cache`, `views` and `pgcompat`, never on the
//! wire frontend (`lambdadb-wire`) or the binary. Unit tests sit beside the
//! code; `tests/seam.rs` checks the batch/speed seam under concurrency against
//! librdkafka's mock cluster; `integration/` drives it through the server.

#![warn(missing_docs)]

pub mod alter;
pub mod background;
pub mod catalog;
pub mod catalog_log;
pub mod catalog_shared;
pub mod context;
pub mod ddl;
pub mod engine;
pub mod error;
pub mod importdir;
pub mod insert;
pub mod layout;
pub mod memory;
pub mod objects;
pub mod plainview;
pub mod replication;
pub mod resultcache;
pub mod snapshot;
pub mod source;
pub mod speedbudget;
pub mod statement;
pub mod system;
pub mod tables;
pub mod view;
pub mod viewspeed;
pub mod writer;

pub use engine::Engine;
