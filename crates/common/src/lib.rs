//! Shared vocabulary of lambdadb, at the bottom of the crate graph: Kafka offset
//! newtypes and watermarks (the batch/speed boundary), source-table specifications,
//! configuration types, and the hidden columns every stored row carries.
//!
//! Nothing here does I/O beyond reading a configuration file, and nothing here
//! imports another lambdadb crate. Unit tests sit beside the code.

#![warn(missing_docs)]

mod batch_engine;
pub mod config;
pub mod failpoint;
pub mod kafka;
pub mod offsets;
pub mod source;
pub mod units;

pub use config::{Config, ConfigError, UserConfig};
pub use offsets::{Fingerprint, Offset, PartitionId, Watermark, payload_hash};
pub use source::{OFFSET_COLUMN, PARTITION_COLUMN, SourceSpec, physical_schema};
