//! `date_trunc` on UTC timestamps without a time-zone lookup per value.
//!
//! DataFusion 55 truncates a zone-aware timestamp to an hour or a day value by
//! value through chrono-tz, and formats an error message for every value on the
//! way (`ok_or(exec_datafusion_err!(...))`, evaluated eagerly): in a profile of
//! a time-bucketed dashboard query over 10 million events, string formatting and
//! zone lookups were ~45% of the server's time (bench/profile.py). In UTC every
//! hour and day has the same length, so for timestamps whose zone is UTC (every
//! `timestamptz` column here) this wrapper truncates with integer arithmetic,
//! as DataFusion itself does for zone-less timestamps, and hands every other
//! case to DataFusion's implementation.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, PrimitiveArray};
use arrow::datatypes::{
    ArrowTimestampType, DataType, FieldRef, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
};

/// DataFusion's `date_trunc` with integer truncation of UTC timestamps to fixed-length units.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcDateTrunc {
    inner: Arc<ScalarUDF>,
}

impl UtcDateTrunc {
    /// Wraps DataFusion's `date_trunc` (as registered in a context).
    pub fn udf(inner: Arc<ScalarUDF>) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self { inner })
    }
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn output_ordering(&self, input: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.inner().output_ordering(input)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        if let Some(out) = utc_fast_path(&args.args) {
            return Ok(ColumnarValue::Array(out));
        }
        self.inner.invoke_with_args(args)
    }
}

/// The truncated array, when the unit is a fixed length in UTC and the input an
/// array of UTC timestamps; `None` hands the call to DataFusion.
fn utc_fast_path(args: &[ColumnarValue]) -> Option<ArrayRef> {
    let [ColumnarValue::Scalar(part), ColumnarValue::Array(array)] = args else {
        return None;
    };
    let (ScalarValue::Utf8(Some(part)) | ScalarValue::Utf8View(Some(part))) = part else {
        return None;
    };
    let DataType::Timestamp(unit, Some(tz)) = array.data_type() else {
        return None;
    };
    if !matches!(tz.as_ref(), "UTC" | "+00:00" | "+00" | "Z") {
        return None;
    }
    let micros: i64 = match part.to_ascii_lowercase().as_str() {
        "microsecond" => 1,
        "millisecond" => 1_000,
        "second" => 1_000_000,
        "minute" => 60_000_000,
        "hour" => 3_600_000_000,
        "day" => 86_400_000_000,
        _ => return None,
    };
    let tz = Some(tz.clone());
    match unit {
        TimeUnit::Second => trunc::<TimestampSecondType>(array, micros / 1_000_000, tz),
        TimeUnit::Millisecond => trunc::<TimestampMillisecondType>(array, micros / 1_000, tz),
        TimeUnit::Microsecond => trunc::<TimestampMicrosecondType>(array, micros, tz),
        TimeUnit::Nanosecond => {
            trunc::<TimestampNanosecondType>(array, micros.checked_mul(1_000)?, tz)
        }
    }
}

fn trunc<T: ArrowTimestampType>(
    array: &ArrayRef,
    step: i64,
    tz: Option<Arc<str>>,
) -> Option<ArrayRef> {
    if step <= 1 {
        return (step == 1).then(|| array.clone());
    }
    let a = array.as_primitive::<T>();
    let out = PrimitiveArray::<T>::from_iter_values_with_nulls(
        a.values().iter().map(|v| v - v.rem_euclid(step)),
        a.nulls().cloned(),
    )
    .with_timezone_opt(tz);
    Some(Arc::new(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMicrosecondArray;
    use datafusion::execution::FunctionRegistry;
    use datafusion::prelude::SessionContext;

    /// The fast path equals DataFusion's own answer, including before 1970
    /// (rem_euclid) and for NULLs; other zones and units are not taken.
    #[tokio::test]
    async fn matches_datafusion() {
        let ctx = SessionContext::new();
        let values = vec![
            Some(1_767_225_600_123_456),
            Some(-1_234_567_890_123),
            None,
            Some(86_399_999_999),
        ];
        for part in ["hour", "day", "minute", "second", "millisecond"] {
            let array: ArrayRef =
                Arc::new(TimestampMicrosecondArray::from(values.clone()).with_timezone("UTC"));
            let args = [
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(part.into()))),
                ColumnarValue::Array(array.clone()),
            ];
            let fast = utc_fast_path(&args).expect("fast path taken");
            let df = ctx
                .udf("date_trunc")
                .unwrap()
                .inner()
                .invoke_with_args(ScalarFunctionArgs {
                    args: args.to_vec(),
                    arg_fields: vec![
                        Arc::new(arrow::datatypes::Field::new("p", DataType::Utf8, false)),
                        Arc::new(arrow::datatypes::Field::new(
                            "t",
                            array.data_type().clone(),
                            true,
                        )),
                    ],
                    number_rows: values.len(),
                    return_field: Arc::new(arrow::datatypes::Field::new(
                        "r",
                        array.data_type().clone(),
                        true,
                    )),
                    config_options: Arc::new(Default::default()),
                })
                .unwrap()
                .into_array(values.len())
                .unwrap();
            assert_eq!(&fast, &df, "{part}");
        }
        let berlin: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(values.clone()).with_timezone("Europe/Berlin"),
        );
        let args = [
            ColumnarValue::Scalar(ScalarValue::Utf8(Some("hour".into()))),
            ColumnarValue::Array(berlin),
        ];
        assert!(utc_fast_path(&args).is_none());
    }
}
