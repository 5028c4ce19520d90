//! Bind parameters (text or binary) into DataFusion scalars.

use arrow::datatypes::{DataType, TimeUnit};
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};
use datafusion::scalar::ScalarValue;
use lambdadb_pgcompat::QueryError;
use pgwire::api::Type;
use pgwire::api::portal::Portal;

use crate::session::Prepared;

/// Decodes the portal's parameters by the type the client declared (or, when it
/// declared none, the type DataFusion inferred), then casts to the inferred type.
pub fn bind_params(
    portal: &Portal<Prepared>,
    expected: &[Option<DataType>],
) -> Result<Vec<ScalarValue>, QueryError> {
    let mut out = Vec::with_capacity(portal.parameter_len());
    for i in 0..portal.parameter_len() {
        let declared = portal.statement.parameter_types.get(i).cloned().flatten();
        let want = expected.get(i).cloned().flatten();
        let ty = declared
            .filter(|t| *t != Type::UNKNOWN)
            .or_else(|| want.as_ref().map(crate::encode::pg_type))
            .unwrap_or(Type::TEXT);
        let bad = |e: pgwire::error::PgWireError| {
            QueryError::InvalidParameter(format!("parameter ${}: {e}", i + 1))
        };
        let v = match ty {
            Type::BOOL => ScalarValue::Boolean(portal.parameter::<bool>(i, &ty).map_err(bad)?),
            Type::INT2 => ScalarValue::Int16(portal.parameter::<i16>(i, &ty).map_err(bad)?),
            Type::INT4 => ScalarValue::Int32(portal.parameter::<i32>(i, &ty).map_err(bad)?),
            Type::INT8 => ScalarValue::Int64(portal.parameter::<i64>(i, &ty).map_err(bad)?),
            Type::FLOAT4 => ScalarValue::Float32(portal.parameter::<f32>(i, &ty).map_err(bad)?),
            Type::FLOAT8 => ScalarValue::Float64(portal.parameter::<f64>(i, &ty).map_err(bad)?),
            Type::TIMESTAMPTZ => ScalarValue::TimestampMicrosecond(
                portal
                    .parameter::<DateTime<FixedOffset>>(i, &ty)
                    .map_err(bad)?
                    .map(|t| t.timestamp_micros()),
                Some("UTC".into()),
            ),
            Type::TIMESTAMP => ScalarValue::TimestampMicrosecond(
                portal
                    .parameter::<NaiveDateTime>(i, &ty)
                    .map_err(bad)?
                    .map(|t| t.and_utc().timestamp_micros()),
                None,
            ),
            Type::DATE => ScalarValue::Date32(
                portal
                    .parameter::<NaiveDate>(i, &ty)
                    .map_err(bad)?
                    .map(|d| d.signed_duration_since(NaiveDate::default()).num_days() as i32),
            ),
            _ => ScalarValue::Utf8(portal.parameter::<String>(i, &ty).map_err(bad)?),
        };
        let v = match &want {
            Some(t) if t != &v.data_type() && !matches!(t, DataType::Null) => {
                let target = match t {
                    DataType::Timestamp(_, tz) => {
                        DataType::Timestamp(TimeUnit::Microsecond, tz.clone())
                    }
                    other => other.clone(),
                };
                v.cast_to(&target).map_err(|e| {
                    QueryError::InvalidParameter(format!(
                        "parameter ${}: cannot be read as {t}: {e}",
                        i + 1
                    ))
                })?
            }
            _ => v,
        };
        out.push(v);
    }
    Ok(out)
}
