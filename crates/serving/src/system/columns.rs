//! Column types the system tables share.

use arrow::datatypes::{DataType, Field, TimeUnit};

/// A nullable UTC timestamp column (milliseconds), as `timestamptz` on the wire.
pub(super) fn ts_field(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
        true,
    )
}
