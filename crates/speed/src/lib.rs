//! The speed layer: Kafka consumers that decode messages into Arrow micro-batches
//! within milliseconds, and the in-memory [`SpeedTable`] that holds every consumed
//! row the master dataset has not archived yet.
//!
//! Offsets are tracked here, not in Kafka: a consumer is started from the watermark
//! the batch layer recorded, and consumer-group commits are progress reports only.
//! The consumer hands its batches to a [`BatchSink`] (the serving layer's source
//! state), so this crate imports only `common`: never `batch`, `cache`, `views`
//! or anything above. Unit tests sit beside the code; the consumer is exercised
//! against librdkafka's mock cluster in `crates/serving/tests/seam.rs` and against
//! a real broker in `integration/`.

#![warn(missing_docs)]

pub mod consumer;
pub mod decode;
mod object;
pub mod table;

pub use consumer::{BatchSink, ConsumerHandle, ConsumerSettings, GapPolicy, spawn_consumer};
pub use decode::{JsonDecoder, RawMessage, Rejection};
pub use table::{SpeedBatch, SpeedTable};
