//! Source tables: a Kafka topic with a declared schema.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// Hidden column holding each row's Kafka partition, stored with every row in the
/// speed layer and in the master dataset so that the batch/speed seam is exact.
pub const PARTITION_COLUMN: &str = "_partition";
/// Hidden column holding each row's Kafka offset.
pub const OFFSET_COLUMN: &str = "_offset";

/// A declared source table (`CREATE TABLE ... WITH (topic = ...)`).
#[derive(Debug, Clone)]
pub struct SourceSpec {
    /// The table's name, as SQL refers to it.
    pub name: String,
    /// The Kafka topic the table's events are consumed from.
    pub topic: String,
    /// Message format; only `json` exists so far.
    pub format: String,
    /// The event-time column, if declared; used for freshness and late-event figures.
    pub event_time: Option<String>,
    /// The declared columns, as users see them.
    pub schema: SchemaRef,
    /// The `CREATE TABLE` text, kept so the catalog can be persisted and shown.
    pub definition: String,
    /// `WITH (retention = '90 days')`: master-dataset files whose events are
    /// all older than this (by event time) are removed.
    pub retention: Option<std::time::Duration>,
}

impl SourceSpec {
    /// Declared columns followed by the two hidden offset columns.
    pub fn physical_schema(&self) -> SchemaRef {
        physical_schema(&self.schema)
    }
}

/// The stored layout of a source: declared columns, then `_partition`, `_offset`.
/// Keeping declared columns first means a projection over the declared schema has
/// the same indices in the physical schema.
pub fn physical_schema(declared: &Schema) -> SchemaRef {
    let mut fields: Vec<Arc<Field>> = declared.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        PARTITION_COLUMN,
        DataType::Int32,
        false,
    )));
    fields.push(Arc::new(Field::new(OFFSET_COLUMN, DataType::Int64, false)));
    Arc::new(Schema::new(fields))
}
