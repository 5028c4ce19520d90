//! The speed layer: Kafka consumers that decode messages into Arrow micro-batches
//! within milliseconds, and the in-memory [`SpeedTable`] that holds every consumed
//! row the master dataset has not archived yet.
//!
//! Offsets are tracked here, not in Kafka: a consumer is started from the watermark
//! the batch layer recorded, and consumer-group commits are progress reports only.

pub mod consumer;
pub mod decode;
mod object;
pub mod table;

pub use consumer::{BatchSink, ConsumerHandle, ConsumerSettings, spawn_consumer};
pub use decode::{JsonDecoder, RawMessage, Rejection};
pub use table::{SpeedBatch, SpeedTable};
