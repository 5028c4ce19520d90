//! Arrow to the Postgres wire: result column types and row encoding, text and
//! binary. The one place where Arrow values become Postgres values.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Float32Array, Float64Array,
    Int16Array, Int32Array, Int64Array, ListArray, StringArray, StringViewArray,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Date32Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Schema, TimeUnit,
};
use arrow::record_batch::RecordBatch;
use arrow::util::display::FormatOptions;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Offset, Utc};
use chrono_tz::Tz;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{CopyEncoder, DataRowEncoder, FieldFormat, FieldInfo};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::copy::CopyData;
use pgwire::messages::data::DataRow;
use pgwire::types::ToSqlText;
use postgres_types::{Kind, ToSql};

use lambdadb_pgcompat::naming::display_name;
use lambdadb_pgcompat::pgtype::{field_oid, pg_type_of};

use crate::error::out_of_range;
use crate::float::{Float4, Float8};
use crate::numeric::Numeric;

/// The Postgres type a column of `dt` is sent as (see [`pg_type_of`]).
pub fn pg_type(dt: &DataType) -> Type {
    Type::from_oid(pg_type_of(dt).oid).unwrap_or(Type::TEXT)
}

/// Row description for `schema` with the client's requested formats.
pub fn field_infos(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            FieldInfo::new(
                display_name(f.name()).to_string(),
                None,
                None,
                Type::from_oid(field_oid(f)).unwrap_or_else(|| pg_type(f.data_type())),
                format.format_for(i),
            )
        })
        .collect()
}

/// A column converted once per batch into the representation its Postgres type
/// is encoded from.
enum Col {
    Bool(BooleanArray),
    I16(Int16Array),
    I32(Int32Array),
    I64(Int64Array),
    F32(Float32Array),
    F64(Float64Array),
    Text(StringArray),
    /// Text kept as views (source tables scan strings as `Utf8View`): casting
    /// them to `Utf8` copied every string once more before encoding.
    TextView(StringViewArray),
    Bytes(BinaryArray),
    Date(Date32Array),
    /// Microseconds since the epoch; time-zone aware; sent as text; the
    /// session's zone text is rendered in (None: UTC).
    Ts(Int64Array, bool, bool, Option<Tz>),
    /// Decimals in their exact text form.
    Numeric(StringArray),
    /// One-dimensional arrays, by element type.
    List(ListArray, Type),
}

fn cast(a: &ArrayRef, to: &DataType) -> PgWireResult<ArrayRef> {
    let opts = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    // A value the column's PostgreSQL type cannot hold (an unsigned 64-bit
    // integer above bigint's range): numeric_value_out_of_range, as PostgreSQL.
    cast_with_options(a, to, &opts).map_err(|e| {
        PgWireError::UserError(Box::new(pgwire::error::ErrorInfo::new(
            "ERROR".into(),
            "22003".into(),
            format!("value out of range for its PostgreSQL type ({to}): {e}; cast it to numeric"),
        )))
    })
}

fn prepare(a: &ArrayRef, field: &FieldInfo, zone: Option<Tz>) -> PgWireResult<Col> {
    Ok(match pg_type(a.data_type()) {
        Type::BOOL => Col::Bool(a.as_boolean().clone()),
        Type::INT2 => Col::I16(
            cast(a, &DataType::Int16)?
                .as_primitive::<Int16Type>()
                .clone(),
        ),
        Type::INT4 => Col::I32(
            cast(a, &DataType::Int32)?
                .as_primitive::<Int32Type>()
                .clone(),
        ),
        Type::INT8 => Col::I64(
            cast(a, &DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone(),
        ),
        Type::FLOAT4 => Col::F32(
            cast(a, &DataType::Float32)?
                .as_primitive::<Float32Type>()
                .clone(),
        ),
        Type::FLOAT8 => Col::F64(
            cast(a, &DataType::Float64)?
                .as_primitive::<Float64Type>()
                .clone(),
        ),
        Type::BYTEA => Col::Bytes(cast(a, &DataType::Binary)?.as_binary::<i32>().clone()),
        Type::DATE => Col::Date(
            cast(a, &DataType::Date32)?
                .as_primitive::<Date32Type>()
                .clone(),
        ),
        Type::TIMESTAMPTZ | Type::TIMESTAMP => {
            let tz = matches!(a.data_type(), DataType::Timestamp(_, Some(_)));
            let micros = cast(a, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let ints = cast(&micros, &DataType::Int64)?;
            let text = field.format() == FieldFormat::Text;
            Col::Ts(ints.as_primitive::<Int64Type>().clone(), tz, text, zone)
        }
        Type::NUMERIC => Col::Numeric(cast(a, &DataType::Utf8)?.as_string::<i32>().clone()),
        t if matches!(t.kind(), Kind::Array(_)) => {
            let (DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _)) =
                a.data_type()
            else {
                unreachable!("array types come from list columns")
            };
            let list = cast(a, &DataType::List(f.clone()))?;
            let Kind::Array(elem) = t.kind() else {
                unreachable!()
            };
            Col::List(list.as_list::<i32>().clone(), elem.clone())
        }
        _ if matches!(a.data_type(), DataType::Utf8View) => {
            Col::TextView(a.as_string_view().clone())
        }
        _ => Col::Text(cast(a, &DataType::Utf8)?.as_string::<i32>().clone()),
    })
}

/// Encodes one array value: its elements cast to the element type's
/// representation and sent as a `Vec<Option<T>>`.
fn encode_list<S: FieldSink>(
    enc: &mut S,
    a: &ListArray,
    elem: &Type,
    r: usize,
) -> PgWireResult<()> {
    if a.is_null(r) {
        return enc.put(&None::<Vec<Option<i64>>>);
    }
    let v = a.value(r);
    fn vals<T: ArrowPrimitiveType>(
        v: &ArrayRef,
        dt: DataType,
    ) -> PgWireResult<Vec<Option<T::Native>>> {
        Ok(cast(v, &dt)?.as_primitive::<T>().iter().collect())
    }
    match *elem {
        Type::BOOL => enc.put(
            &cast(&v, &DataType::Boolean)?
                .as_boolean()
                .iter()
                .collect::<Vec<_>>(),
        ),
        Type::INT2 => enc.put(&vals::<Int16Type>(&v, DataType::Int16)?),
        Type::INT4 => enc.put(&vals::<Int32Type>(&v, DataType::Int32)?),
        Type::INT8 => enc.put(&vals::<Int64Type>(&v, DataType::Int64)?),
        Type::FLOAT4 => enc.put(&vals::<Float32Type>(&v, DataType::Float32)?),
        Type::FLOAT8 => enc.put(&vals::<Float64Type>(&v, DataType::Float64)?),
        _ => {
            let text = cast(&v, &DataType::Utf8)?;
            enc.put(&text.as_string::<i32>().iter().collect::<Vec<_>>())
        }
    }
}

/// Encodes every row of `batch` as a DataRow following `fields` (types, formats).
pub fn encode_batch(
    batch: &RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
    zone: Option<Tz>,
) -> PgWireResult<Vec<DataRow>> {
    let cols = prepare_all(batch, fields, zone)?;
    let mut enc = DataRowEncoder::new(fields.clone());
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        for c in &cols {
            encode_cell(&mut enc, c, r)?;
        }
        rows.push(enc.take_row());
    }
    Ok(rows)
}

/// Where encoded values go: a DataRow or a COPY row. One encoder for both.
pub trait FieldSink {
    /// Encodes `value` as the next field of the current row.
    fn put<T: ToSql + ToSqlText + Sized>(&mut self, value: &T) -> PgWireResult<()>;
}

impl FieldSink for DataRowEncoder {
    fn put<T: ToSql + ToSqlText + Sized>(&mut self, value: &T) -> PgWireResult<()> {
        self.encode_field(value)
    }
}

impl FieldSink for CopyEncoder {
    fn put<T: ToSql + ToSqlText + Sized>(&mut self, value: &T) -> PgWireResult<()> {
        self.encode_field(value)
    }
}

/// Encodes every row of `batch` as COPY data following `fields`.
pub fn encode_copy(
    batch: &RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
    enc: &mut CopyEncoder,
    zone: Option<Tz>,
) -> PgWireResult<Vec<CopyData>> {
    let cols = prepare_all(batch, fields, zone)?;
    let mut rows = Vec::with_capacity(batch.num_rows());
    for r in 0..batch.num_rows() {
        for c in &cols {
            encode_cell(enc, c, r)?;
        }
        rows.push(enc.take_copy());
    }
    Ok(rows)
}

fn prepare_all(
    batch: &RecordBatch,
    fields: &Arc<Vec<FieldInfo>>,
    zone: Option<Tz>,
) -> PgWireResult<Vec<Col>> {
    batch
        .columns()
        .iter()
        .zip(fields.iter())
        .map(|(a, f)| prepare(a, f, zone))
        .collect()
}

fn opt<A: Array>(a: &A, r: usize) -> bool {
    a.is_valid(r)
}

fn encode_cell<S: FieldSink>(enc: &mut S, c: &Col, r: usize) -> PgWireResult<()> {
    match c {
        Col::Bool(a) => enc.put(&opt(a, r).then(|| a.value(r))),
        Col::I16(a) => enc.put(&opt(a, r).then(|| a.value(r))),
        Col::I32(a) => enc.put(&opt(a, r).then(|| a.value(r))),
        Col::I64(a) => enc.put(&opt(a, r).then(|| a.value(r))),
        Col::F32(a) => enc.put(&opt(a, r).then(|| Float4(a.value(r)))),
        Col::F64(a) => enc.put(&opt(a, r).then(|| Float8(a.value(r)))),
        Col::Text(a) => enc.put(&opt(a, r).then(|| a.value(r))),
        Col::TextView(a) => enc.put(&opt(a, r).then(|| a.value(r))),
        Col::Bytes(a) => enc.put(&opt(a, r).then(|| a.value(r))),
        Col::Date(a) => {
            let d = match opt(a, r) {
                true => Some(date(a.value(r))?),
                false => None,
            };
            enc.put(&d)
        }
        Col::Numeric(a) => enc.put(&opt(a, r).then(|| Numeric(a.value(r)))),
        Col::List(a, elem) => encode_list(enc, a, elem, r),
        Col::Ts(a, tz, text, zone) => {
            let t = match opt(a, r) {
                true => Some(timestamp(a.value(r))?),
                false => None,
            };
            if *text {
                enc.put(&t.map(|t| timestamp_text(&t, *tz, *zone)))
            } else if *tz {
                enc.put(&t)
            } else {
                enc.put(&t.map(|t| -> NaiveDateTime { t.naive_utc() }))
            }
        }
    }
}

/// The date `days` after 1970-01-01, or 22008 when it is beyond the dates the
/// encoder represents (years -262143 to 262142; a `date` column holds up to
/// 5.8 million years either way).
fn date(days: i32) -> PgWireResult<NaiveDate> {
    chrono::TimeDelta::try_days(days as i64)
        .and_then(|d| NaiveDate::default().checked_add_signed(d))
        .ok_or_else(|| {
            out_of_range(format!(
                "date out of range: {days} days from 1970-01-01 cannot be sent; filter or cast the value"
            ))
        })
}

/// The instant `micros` after the epoch, or 22008 when it is beyond the
/// encoder's range (years -262143 to 262142).
fn timestamp(micros: i64) -> PgWireResult<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_micros(micros).ok_or_else(|| {
        out_of_range(format!(
            "timestamp out of range: {micros} microseconds from the epoch cannot be sent; filter or cast the value"
        ))
    })
}

/// PostgreSQL's text form (DateStyle ISO): fractional seconds only when
/// present, without trailing zeros; time-zone aware values in the session's
/// zone with its offset (`+00`, `+02`, `-03:30`).
fn timestamp_text(t: &DateTime<Utc>, tz: bool, zone: Option<Tz>) -> String {
    let (local, offset) = match (tz, zone) {
        (true, Some(zone)) => {
            let l = t.with_timezone(&zone);
            (l.naive_local(), l.offset().fix().local_minus_utc())
        }
        _ => (t.naive_utc(), 0),
    };
    let mut s = local.format("%Y-%m-%d %H:%M:%S").to_string();
    let micros = t.timestamp_subsec_micros();
    if micros != 0 {
        let frac = format!(".{micros:06}");
        s.push_str(frac.trim_end_matches('0'));
    }
    if tz {
        let sign = if offset < 0 { '-' } else { '+' };
        let o = offset.unsigned_abs();
        s.push_str(&format!("{sign}{:02}", o / 3600));
        if o % 3600 != 0 {
            s.push_str(&format!(":{:02}", o % 3600 / 60));
        }
        if o % 60 != 0 {
            s.push_str(&format!(":{:02}", o % 60));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_text_like_postgres() {
        let t = DateTime::<Utc>::from_timestamp_micros(1_500_000).unwrap();
        assert_eq!(
            super::timestamp_text(&t, true, None),
            "1970-01-01 00:00:01.5+00"
        );
        assert_eq!(
            super::timestamp_text(&t, false, None),
            "1970-01-01 00:00:01.5"
        );
        let kolkata: Tz = "Asia/Kolkata".parse().unwrap();
        assert_eq!(
            super::timestamp_text(&t, true, Some(kolkata)),
            "1970-01-01 05:30:01.5+05:30"
        );
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(
            super::timestamp_text(&t, false, Some(ny)),
            "1970-01-01 00:00:01.5"
        );
    }

    use super::*;
    use arrow::datatypes::Field;

    #[test]
    fn types_follow_postgres() {
        assert_eq!(pg_type(&DataType::Int64), Type::INT8);
        assert_eq!(
            pg_type(&DataType::Timestamp(
                TimeUnit::Microsecond,
                Some("UTC".into())
            )),
            Type::TIMESTAMPTZ
        );
        assert_eq!(pg_type(&DataType::Utf8View), Type::TEXT);
    }

    #[test]
    fn encodes_text_and_nulls() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new(
                "t",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None])),
                Arc::new(
                    arrow::array::TimestampMicrosecondArray::from(vec![Some(0), None])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let fields = Arc::new(field_infos(&schema, &Format::UnifiedText));
        assert_eq!(fields[1].format(), FieldFormat::Text);
        let rows = encode_batch(&batch, &fields, None).unwrap();
        assert_eq!(rows.len(), 2);
        let first = String::from_utf8_lossy(&rows[0].data).to_string();
        assert!(first.contains('7'), "{first}");
        assert!(first.ends_with("1970-01-01 00:00:00+00"), "{first}");
    }
}
