//! JSON messages to Arrow rows of a declared schema.
//!
//! Each message is validated whole before any of its fields is appended, so a bad
//! message never leaves a half-written row: it becomes a [`Rejection`] carrying its
//! partition, offset and the reason, and decoding goes on with the next message.
//! Field names are column names; unknown fields are ignored (producers add fields
//! before consumers learn them); a missing or `null` field is NULL when the column
//! is nullable and a rejection otherwise. Timestamps are RFC 3339 strings or epoch
//! milliseconds.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder,
    Int16Builder, Int32Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use lambdadb_common::{PartitionId, physical_schema};
use serde_json::Value;

use crate::object::{ObjectError, read_object};

/// One consumed Kafka message.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// The Kafka partition the message was consumed from.
    pub partition: PartitionId,
    /// The message's offset within its partition.
    pub offset: i64,
    /// The message value; `None` when it has none (such a message is rejected).
    pub payload: Option<Vec<u8>>,
}

/// A message that could not be decoded, kept for `lambdadb.rejected_messages`.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// The Kafka partition of the rejected message.
    pub partition: PartitionId,
    /// The rejected message's offset within its partition.
    pub offset: i64,
    /// Why the message was rejected, worded for users.
    pub reason: String,
}

/// Decodes JSON messages of one source into record batches of its physical schema
/// (declared columns, then `_partition` and `_offset`).
#[derive(Debug, Clone)]
pub struct JsonDecoder {
    declared: SchemaRef,
    physical: SchemaRef,
    /// The declared column names, matched against each message's keys.
    names: Vec<String>,
}

enum Cell {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// Microseconds since the epoch (timestamps) or days (dates).
    Time(i64),
    /// A decimal's unscaled value at the column's scale.
    Decimal(i128),
}

impl JsonDecoder {
    /// A decoder for the `declared` columns; fails on a type JSON sources cannot decode yet.
    pub fn try_new(declared: SchemaRef) -> Result<Self, String> {
        for f in declared.fields() {
            if !supported(f.data_type()) {
                return Err(format!(
                    "column {} has type {}, which JSON sources do not support yet; use BIGINT, INTEGER, SMALLINT, NUMERIC(p,s), DOUBLE PRECISION, REAL, BOOLEAN, TEXT, DATE, TIMESTAMP or TIMESTAMPTZ",
                    f.name(),
                    f.data_type()
                ));
            }
        }
        Ok(Self {
            physical: physical_schema(&declared),
            names: declared.fields().iter().map(|f| f.name().clone()).collect(),
            declared,
        })
    }

    /// The schema of decoded batches: declared columns, then `_partition` and `_offset`.
    pub fn physical_schema(&self) -> SchemaRef {
        self.physical.clone()
    }

    /// Decodes `messages` (all of one partition or mixed) into one batch of accepted
    /// rows plus the rejections. The batch may have zero rows.
    pub fn decode(&self, messages: &[RawMessage]) -> (RecordBatch, Vec<Rejection>) {
        let fields = self.declared.fields();
        let mut columns: Vec<ColumnBuilder> = fields
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type(), messages.len()))
            .collect();
        let mut partitions = Int32Builder::with_capacity(messages.len());
        let mut offsets = Int64Builder::with_capacity(messages.len());
        let mut rejected = Vec::new();
        let mut row: Vec<Cell> = Vec::with_capacity(fields.len());
        let mut slots: Vec<Option<Value>> = vec![None; fields.len()];
        for m in messages {
            row.clear();
            match self.decode_row(m, &mut slots, &mut row) {
                Ok(()) => {
                    for (b, c) in columns.iter_mut().zip(row.drain(..)) {
                        b.append(c);
                    }
                    partitions.append_value(m.partition);
                    offsets.append_value(m.offset);
                }
                Err(reason) => rejected.push(Rejection {
                    partition: m.partition,
                    offset: m.offset,
                    reason,
                }),
            }
        }
        let mut arrays: Vec<ArrayRef> = columns.into_iter().map(ColumnBuilder::finish).collect();
        arrays.push(Arc::new(partitions.finish()));
        arrays.push(Arc::new(offsets.finish()));
        let batch = RecordBatch::try_new(self.physical.clone(), arrays)
            .expect("builders follow the physical schema");
        (batch, rejected)
    }

    fn decode_row(
        &self,
        m: &RawMessage,
        slots: &mut [Option<Value>],
        row: &mut Vec<Cell>,
    ) -> Result<(), String> {
        let payload = m.payload.as_deref().ok_or("message has no value")?;
        read_object(payload, &self.names, slots).map_err(|e| match e {
            ObjectError::NotObject => "JSON value is not an object".to_string(),
            ObjectError::Syntax(e) => format!("not valid JSON: {e}"),
        })?;
        for (f, slot) in self.declared.fields().iter().zip(slots.iter_mut()) {
            let cell = match slot.take() {
                None | Some(Value::Null) => Cell::Null,
                Some(v) => {
                    convert(v, f.data_type()).map_err(|e| format!("field \"{}\": {e}", f.name()))?
                }
            };
            if matches!(cell, Cell::Null) && !f.is_nullable() {
                return Err(format!(
                    "field \"{}\" is missing or null, but the column is NOT NULL",
                    f.name()
                ));
            }
            row.push(cell);
        }
        Ok(())
    }
}

fn supported(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Boolean
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Utf8
            | DataType::Date32
            | DataType::Decimal128(..)
            | DataType::Timestamp(TimeUnit::Microsecond, _)
    )
}

/// Moves a string value into its cell (no copy); everything else converts by
/// reference.
fn convert(v: Value, t: &DataType) -> Result<Cell, String> {
    match (t, v) {
        (DataType::Utf8, Value::String(s)) => Ok(Cell::Text(s)),
        (t, v) => convert_ref(&v, t),
    }
}

fn convert_ref(v: &Value, t: &DataType) -> Result<Cell, String> {
    let wrong = || format!("expected {}, found {}", type_word(t), json_kind(v));
    Ok(match t {
        DataType::Boolean => Cell::Bool(v.as_bool().ok_or_else(wrong)?),
        DataType::Int16 | DataType::Int32 | DataType::Int64 => {
            let n = v.as_i64().ok_or_else(wrong)?;
            let (lo, hi) = match t {
                DataType::Int16 => (i16::MIN as i64, i16::MAX as i64),
                DataType::Int32 => (i32::MIN as i64, i32::MAX as i64),
                _ => (i64::MIN, i64::MAX),
            };
            if n < lo || n > hi {
                return Err(format!("{n} is out of range for {}", type_word(t)));
            }
            Cell::Int(n)
        }
        // A JSON number, or text: PostgreSQL's "NaN", "Infinity", "-Infinity"
        // (and Rust's "inf"), which JSON numbers cannot carry. A finite number
        // beyond a real's range is refused rather than stored as infinity.
        DataType::Float32 | DataType::Float64 => {
            let x = match v {
                Value::String(s) => s
                    .trim()
                    .parse::<f64>()
                    .map_err(|_| format!("'{s}' is not a number"))?,
                _ => v.as_f64().ok_or_else(wrong)?,
            };
            if *t == DataType::Float32 && x.is_finite() && (x as f32).is_infinite() {
                return Err(format!("{x} is out of range for type real"));
            }
            Cell::Float(x)
        }
        DataType::Utf8 => Cell::Text(v.as_str().ok_or_else(wrong)?.to_string()),
        DataType::Date32 => {
            let s = v.as_str().ok_or_else(wrong)?;
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|e| format!("'{s}' is not a date (YYYY-MM-DD): {e}"))?;
            Cell::Time(d.signed_duration_since(NaiveDate::default()).num_days())
        }
        // A JSON number or a string of digits: money often travels as a string so
        // that no float rounding touches it. Too many fractional digits round, as
        // in PostgreSQL; too many integer digits are refused.
        DataType::Decimal128(p, sc) => {
            let text = match v {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                _ => return Err(wrong()),
            };
            Cell::Decimal(
                arrow::compute::kernels::cast_utils::parse_decimal::<
                    arrow::datatypes::Decimal128Type,
                >(text.trim(), *p, *sc)
                .map_err(|e| format!("'{text}' is not a numeric({p},{sc}): {e}"))?,
            )
        }
        DataType::Timestamp(_, _) => Cell::Time(timestamp_micros(v).ok_or_else(|| {
            format!(
                "expected an RFC 3339 timestamp or epoch milliseconds, found {}",
                json_kind(v)
            )
        })?),
        _ => return Err(wrong()),
    })
}

/// RFC 3339 text (a space may replace the `T`; text without an offset is UTC) or a
/// number of milliseconds since the epoch.
fn timestamp_micros(v: &Value) -> Option<i64> {
    timestamp_micros_any(v).filter(|us| (PG_MIN_MICROS..PG_END_MICROS).contains(us))
}

/// The timestamps lambdadb stores and shows, in microseconds since 1970: from
/// PostgreSQL's first (4714-11-24 BC) to the last that chrono can print
/// (262142-12-31). An event time outside them is refused, not saturated.
const PG_MIN_MICROS: i64 = -210_866_803_200_000_000;
const PG_END_MICROS: i64 = 8_210_266_876_800_000_000;

fn timestamp_micros_any(v: &Value) -> Option<i64> {
    if let Some(ms) = v.as_i64() {
        return ms.checked_mul(1000);
    }
    if let Some(ms) = v.as_f64() {
        let us = (ms * 1000.0).round();
        // `as` saturates: 1e300 would become i64::MAX, a bogus time.
        return (us.is_finite() && us.abs() < 9.2e18).then_some(us as i64);
    }
    let s = v.as_str()?;
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    let spaced = s.replacen(' ', "T", 1);
    if let Ok(t) = DateTime::parse_from_rfc3339(&spaced) {
        return Some(t.timestamp_micros());
    }
    NaiveDateTime::parse_from_str(&spaced, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc().timestamp_micros())
}

fn type_word(t: &DataType) -> &'static str {
    match t {
        DataType::Boolean => "a boolean",
        DataType::Int16 => "a smallint",
        DataType::Int32 => "an integer",
        DataType::Int64 => "a bigint",
        DataType::Float32 | DataType::Float64 => "a number",
        DataType::Utf8 => "a string",
        DataType::Date32 => "a date string",
        DataType::Decimal128(..) => "a numeric (number or string)",
        _ => "a timestamp",
    }
}

fn json_kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) if s.len() > 40 => {
            format!("string \"{}...\"", &s[..s.floor_char_boundary(40)])
        }
        Value::String(s) => format!("string \"{s}\""),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

enum ColumnBuilder {
    Bool(BooleanBuilder),
    I16(Int16Builder),
    I32(Int32Builder),
    I64(Int64Builder),
    F32(Float32Builder),
    F64(Float64Builder),
    Text(StringBuilder),
    Date(Date32Builder),
    Ts(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Dec(Decimal128Builder, u8, i8),
}

impl ColumnBuilder {
    fn new(t: &DataType, n: usize) -> Self {
        match t {
            DataType::Boolean => Self::Bool(BooleanBuilder::with_capacity(n)),
            DataType::Int16 => Self::I16(Int16Builder::with_capacity(n)),
            DataType::Int32 => Self::I32(Int32Builder::with_capacity(n)),
            DataType::Int64 => Self::I64(Int64Builder::with_capacity(n)),
            DataType::Float32 => Self::F32(Float32Builder::with_capacity(n)),
            DataType::Float64 => Self::F64(Float64Builder::with_capacity(n)),
            DataType::Utf8 => Self::Text(StringBuilder::with_capacity(n, n * 16)),
            DataType::Date32 => Self::Date(Date32Builder::with_capacity(n)),
            DataType::Timestamp(_, tz) => {
                Self::Ts(TimestampMicrosecondBuilder::with_capacity(n), tz.clone())
            }
            DataType::Decimal128(p, s) => Self::Dec(Decimal128Builder::with_capacity(n), *p, *s),
            other => unreachable!("checked by JsonDecoder::try_new: {other}"),
        }
    }

    fn append(&mut self, c: Cell) {
        match (self, c) {
            (Self::Bool(b), Cell::Bool(v)) => b.append_value(v),
            (Self::I16(b), Cell::Int(v)) => b.append_value(v as i16),
            (Self::I32(b), Cell::Int(v)) => b.append_value(v as i32),
            (Self::I64(b), Cell::Int(v)) => b.append_value(v),
            (Self::F32(b), Cell::Float(v)) => b.append_value(v as f32),
            (Self::F64(b), Cell::Float(v)) => b.append_value(v),
            (Self::Text(b), Cell::Text(v)) => b.append_value(v),
            (Self::Date(b), Cell::Time(v)) => b.append_value(v as i32),
            (Self::Ts(b, _), Cell::Time(v)) => b.append_value(v),
            (Self::Dec(b, ..), Cell::Decimal(v)) => b.append_value(v),
            (b, _) => b.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            Self::Bool(b) => b.append_null(),
            Self::I16(b) => b.append_null(),
            Self::I32(b) => b.append_null(),
            Self::I64(b) => b.append_null(),
            Self::F32(b) => b.append_null(),
            Self::F64(b) => b.append_null(),
            Self::Text(b) => b.append_null(),
            Self::Date(b) => b.append_null(),
            Self::Ts(b, _) => b.append_null(),
            Self::Dec(b, ..) => b.append_null(),
        }
    }

    fn finish(self) -> ArrayRef {
        match self {
            Self::Bool(mut b) => Arc::new(b.finish()),
            Self::I16(mut b) => Arc::new(b.finish()),
            Self::I32(mut b) => Arc::new(b.finish()),
            Self::I64(mut b) => Arc::new(b.finish()),
            Self::F32(mut b) => Arc::new(b.finish()),
            Self::F64(mut b) => Arc::new(b.finish()),
            Self::Text(mut b) => Arc::new(b.finish()),
            Self::Date(mut b) => Arc::new(b.finish()),
            Self::Ts(mut b, tz) => Arc::new(b.finish().with_timezone_opt(tz)),
            Self::Dec(mut b, p, s) => Arc::new(
                b.finish()
                    .with_precision_and_scale(p, s)
                    .expect("precision and scale checked at CREATE TABLE"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray};
    use arrow::datatypes::{Field, Int64Type, Schema, TimestampMicrosecondType};

    fn decoder() -> JsonDecoder {
        let schema = Schema::new(vec![
            Field::new(
                "event_time",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("user_id", DataType::Int64, false),
            Field::new("page", DataType::Utf8, true),
            Field::new("duration_ms", DataType::Int32, true),
        ]);
        JsonDecoder::try_new(Arc::new(schema)).unwrap()
    }

    fn msg(offset: i64, text: &str) -> RawMessage {
        RawMessage {
            partition: 2,
            offset,
            payload: Some(text.as_bytes().to_vec()),
        }
    }

    #[test]
    fn decodes_good_rows_and_rejects_bad_ones() {
        let d = decoder();
        let msgs = vec![
            msg(
                10,
                r#"{"event_time":"2026-01-01T00:00:00Z","user_id":1,"page":"/a"}"#,
            ),
            msg(11, "not json"),
            msg(
                12,
                r#"{"event_time":1767225600000,"user_id":2,"duration_ms":5,"extra":1}"#,
            ),
            msg(13, r#"{"event_time":"2026-01-01T00:00:00Z","user_id":"x"}"#),
            msg(14, r#"{"user_id":3}"#),
            msg(
                15,
                r#"{"event_time":"2026-01-01 01:00:00","user_id":4,"duration_ms":99999999999}"#,
            ),
        ];
        let (batch, rejected) = d.decode(&msgs);
        assert_eq!(batch.num_rows(), 2);
        let offsets: Vec<i64> = rejected.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![11, 13, 14, 15]);
        assert!(rejected[0].reason.contains("not valid JSON"));
        assert!(
            rejected[1].reason.contains("user_id"),
            "{}",
            rejected[1].reason
        );
        assert!(rejected[2].reason.contains("NOT NULL"));
        assert!(rejected[3].reason.contains("out of range"));
        let ts = batch.column(0).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_767_225_600_000_000);
        assert_eq!(
            ts.value(1),
            1_767_225_600_000_000,
            "epoch millis equal RFC 3339"
        );
        assert!(batch.column(2).is_null(1), "missing nullable field is NULL");
        let off = batch.column(5).as_primitive::<Int64Type>();
        assert_eq!((off.value(0), off.value(1)), (10, 12));
        assert_eq!(batch.schema().field(4).name(), "_partition");
    }

    #[test]
    fn decimals_from_numbers_and_strings() {
        let schema = Schema::new(vec![Field::new("price", DataType::Decimal128(15, 2), true)]);
        let d = JsonDecoder::try_new(Arc::new(schema)).unwrap();
        let (batch, rejected) = d.decode(&[
            msg(0, r#"{"price":12.5}"#),
            msg(1, r#"{"price":"901.99"}"#),
            msg(2, r#"{"price":"abc"}"#),
            msg(3, r#"{"price":1e20}"#),
        ]);
        let col = batch
            .column(0)
            .as_primitive::<arrow::datatypes::Decimal128Type>();
        assert_eq!(col.values(), &[1250, 90199]);
        assert_eq!(col.precision(), 15);
        let offsets: Vec<i64> = rejected.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![2, 3], "{rejected:?}");
    }

    /// Issue 13: an event time of 1e300 saturated to a bogus timestamp and a
    /// REAL overflowed to infinity; both are refused now. NaN and infinities
    /// arrive as text (INSERT writes them so) and are kept.
    #[test]
    fn out_of_range_times_and_reals_are_refused_non_finite_text_is_kept() {
        let schema = Schema::new(vec![
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                false,
            ),
            Field::new("r", DataType::Float32, true),
            Field::new("d", DataType::Float64, true),
        ]);
        let d = JsonDecoder::try_new(Arc::new(schema)).unwrap();
        let (rows, rejected) = d.decode(&[
            msg(0, r#"{"t": 1e300}"#),
            msg(1, r#"{"t": -1e17}"#),
            msg(2, r#"{"t": 1, "r": 1e39}"#),
            msg(3, r#"{"t": 1, "r": "inf", "d": "NaN"}"#),
            msg(4, r#"{"t": 1.5, "r": 2.5, "d": "-Infinity"}"#),
        ]);
        let offsets: Vec<i64> = rejected.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2], "{rejected:?}");
        assert!(rejected[2].reason.contains("out of range for type real"));
        assert_eq!(rows.num_rows(), 2);
        let r = rows
            .column(1)
            .as_primitive::<arrow::datatypes::Float32Type>();
        let dd = rows
            .column(2)
            .as_primitive::<arrow::datatypes::Float64Type>();
        assert!(r.value(0).is_infinite() && dd.value(0).is_nan());
        assert_eq!(dd.value(1), f64::NEG_INFINITY);
    }
}
