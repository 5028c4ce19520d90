//! The PostgreSQL type each Arrow type is presented as: one table for the wire
//! (RowDescription OIDs), `information_schema` and anything else that names
//! types, so a column reports the same type everywhere.

use arrow::datatypes::{DataType, Field, TimeUnit};

use crate::error::{QueryError, Result};

/// Field metadata key asking the wire layer to describe a column with another
/// PostgreSQL type OID of the same encoding (`name` or `varchar` for text): how
/// catalog tables report PostgreSQL's own column types.
pub const PG_TYPE_KEY: &str = "lambdadb.pg_type";

/// OID of PostgreSQL's `name` type, for catalog columns that hold identifiers.
pub const NAME_OID: u32 = 19;
/// OID of PostgreSQL's `varchar` type, for catalog columns that hold other text.
pub const VARCHAR_OID: u32 = 1043;

/// How PostgreSQL names and describes one column type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgType {
    /// The type's OID, as RowDescription and `pg_type` give it.
    pub oid: u32,
    /// `information_schema.columns.udt_name` (`int8`, `_int4`).
    pub udt_name: &'static str,
    /// `information_schema.columns.data_type` (`bigint`, `ARRAY`).
    pub sql_name: &'static str,
}

const fn t(oid: u32, udt_name: &'static str, sql_name: &'static str) -> PgType {
    PgType {
        oid,
        udt_name,
        sql_name,
    }
}

/// The PostgreSQL type an Arrow type is presented as; anything unmapped is `text`.
pub fn pg_type_of(dt: &DataType) -> PgType {
    match dt {
        DataType::Boolean => t(16, "bool", "boolean"),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => t(21, "int2", "smallint"),
        DataType::Int32 | DataType::UInt16 => t(23, "int4", "integer"),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => t(20, "int8", "bigint"),
        DataType::Float16 | DataType::Float32 => t(700, "float4", "real"),
        DataType::Float64 => t(701, "float8", "double precision"),
        DataType::Decimal32(..)
        | DataType::Decimal64(..)
        | DataType::Decimal128(..)
        | DataType::Decimal256(..) => t(1700, "numeric", "numeric"),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => t(17, "bytea", "bytea"),
        DataType::Date32 | DataType::Date64 => t(1082, "date", "date"),
        DataType::Timestamp(_, Some(_)) => t(1184, "timestamptz", "timestamp with time zone"),
        DataType::Timestamp(_, None) => t(1114, "timestamp", "timestamp without time zone"),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            match pg_type_of(f.data_type()).oid {
                16 => t(1000, "_bool", "ARRAY"),
                21 => t(1005, "_int2", "ARRAY"),
                23 => t(1007, "_int4", "ARRAY"),
                20 => t(1016, "_int8", "ARRAY"),
                700 => t(1021, "_float4", "ARRAY"),
                701 => t(1022, "_float8", "ARRAY"),
                // Other elements travel as text.
                _ => t(1009, "_text", "ARRAY"),
            }
        }
        _ => t(25, "text", "text"),
    }
}

/// The OID a result column is described with: its metadata hint if any, else
/// its Arrow type's.
pub fn field_oid(f: &Field) -> u32 {
    if let Some(oid) = f.metadata().get(PG_TYPE_KEY).and_then(|v| v.parse().ok()) {
        return oid;
    }
    // datafusion-pg-catalog marks its object-identifier columns (pg_class.oid,
    // relnamespace, atttypid, ...); PostgreSQL describes them as `oid`, whose
    // text and 4-byte binary forms are those of the integer.
    if f.metadata().contains_key(OID_ALIAS_KEY) && f.data_type() == &DataType::Int32 {
        return OID_OID;
    }
    pg_type_of(f.data_type()).oid
}

/// datafusion-pg-catalog's field metadata key for object-identifier columns.
const OID_ALIAS_KEY: &str = "pg.oid_alias";
const OID_OID: u32 = 26;

/// A text field described as PostgreSQL type `oid` (`name`, `varchar`).
pub fn text_field(name: &str, oid: u32, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable).with_metadata(
        [(PG_TYPE_KEY.to_string(), oid.to_string())]
            .into_iter()
            .collect(),
    )
}

/// `numeric_precision`, `numeric_precision_radix`, `numeric_scale` and
/// `datetime_precision` as `information_schema.columns` reports them.
pub fn precision(dt: &DataType) -> (Option<i32>, Option<i32>, Option<i32>, Option<i32>) {
    match dt {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => (Some(16), Some(2), Some(0), None),
        DataType::Int32 | DataType::UInt16 => (Some(32), Some(2), Some(0), None),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => (Some(64), Some(2), Some(0), None),
        DataType::Float16 | DataType::Float32 => (Some(24), Some(2), None, None),
        DataType::Float64 => (Some(53), Some(2), None, None),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
            (Some(*p as i32), Some(10), Some(*s as i32), None)
        }
        DataType::Date32 | DataType::Date64 => (None, None, None, Some(0)),
        DataType::Timestamp(..) => (None, None, None, Some(6)),
        _ => (None, None, None, None),
    }
}

/// PostgreSQL type names to the Arrow types lambdadb stores.
pub fn sql_type(name: &str) -> Result<DataType> {
    let n = name.to_ascii_uppercase();
    let base = n.split('(').next().unwrap_or(&n).trim();
    Ok(match base {
        "BIGINT" | "INT8" => DataType::Int64,
        "INTEGER" | "INT" | "INT4" => DataType::Int32,
        "SMALLINT" | "INT2" => DataType::Int16,
        "DOUBLE PRECISION" | "FLOAT8" | "DOUBLE" | "FLOAT" => DataType::Float64,
        "REAL" | "FLOAT4" => DataType::Float32,
        // CHAR(n) is stored as text: no blank padding (PostgreSQL strips it in
        // comparisons anyway), which is what TPC-H style schemas rely on.
        "TEXT" | "VARCHAR" | "CHARACTER VARYING" | "STRING" | "CHAR" | "CHARACTER" | "BPCHAR" => {
            DataType::Utf8
        }
        "NUMERIC" | "DECIMAL" => numeric_type(&n)?,
        "BOOLEAN" | "BOOL" => DataType::Boolean,
        "DATE" => DataType::Date32,
        "TIMESTAMPTZ" | "TIMESTAMP WITH TIME ZONE" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        "TIMESTAMP" | "TIMESTAMP WITHOUT TIME ZONE" => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        _ => {
            return Err(QueryError::FeatureNotSupported(format!(
                "type {name} is not supported for source columns; use BIGINT, INTEGER, SMALLINT, NUMERIC(p,s), DOUBLE PRECISION, REAL, TEXT, BOOLEAN, DATE, TIMESTAMP or TIMESTAMPTZ"
            )));
        }
    })
}

/// `NUMERIC(p, s)` with 1 <= p <= 38, 0 <= s <= p, stored as a 128-bit decimal.
/// Unconstrained `NUMERIC` is refused rather than guessed: its arbitrary precision
/// has no fixed-width column type.
fn numeric_type(name: &str) -> Result<DataType> {
    let args: Vec<&str> = name
        .split_once('(')
        .map(|(_, rest)| {
            rest.trim_end_matches(')')
                .split(',')
                .map(str::trim)
                .collect()
        })
        .unwrap_or_default();
    let parsed: Option<(u8, i8)> = match args.as_slice() {
        [p] => p.parse().ok().map(|p| (p, 0)),
        [p, s] => p.parse().ok().zip(s.parse().ok()),
        _ => None,
    };
    match parsed {
        Some((p, s)) if (1..=38).contains(&p) && s >= 0 && s as u8 <= p => {
            Ok(DataType::Decimal128(p, s))
        }
        _ => Err(QueryError::FeatureNotSupported(format!(
            "type {name} is not supported for source columns; give NUMERIC a precision of 1 to 38 and a scale, e.g. NUMERIC(15,2), or use DOUBLE PRECISION"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_and_char_columns() {
        assert_eq!(
            sql_type("NUMERIC(15,2)").unwrap(),
            DataType::Decimal128(15, 2)
        );
        assert_eq!(
            sql_type("decimal(10)").unwrap(),
            DataType::Decimal128(10, 0)
        );
        assert_eq!(sql_type("CHAR(25)").unwrap(), DataType::Utf8);
        for bad in ["NUMERIC", "NUMERIC(39,2)", "NUMERIC(5,6)"] {
            let e = sql_type(bad).unwrap_err().to_string();
            assert!(e.contains("NUMERIC(15,2)"), "{bad}: {e}");
        }
    }

    #[test]
    fn names_follow_postgres() {
        let ts = pg_type_of(&DataType::Timestamp(
            TimeUnit::Microsecond,
            Some("UTC".into()),
        ));
        assert_eq!(
            (ts.oid, ts.udt_name, ts.sql_name),
            (1184, "timestamptz", "timestamp with time zone")
        );
        let list = DataType::List(std::sync::Arc::new(Field::new(
            "item",
            DataType::Int32,
            true,
        )));
        assert_eq!(pg_type_of(&list).udt_name, "_int4");
        assert_eq!(field_oid(&text_field("n", NAME_OID, false)), 19);
        assert_eq!(pg_type_of(&DataType::Utf8View).oid, 25);
    }
}
