//! The event-time range of a column, for retention by event time.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};

/// The smallest and largest value of a date or timestamp column, in
/// milliseconds since the epoch; `None` for other types or no values.
pub(crate) fn bounds_ms(a: &ArrayRef) -> Option<(i64, i64)> {
    use arrow::compute::{max, min};
    let (lo, hi, per_ms): (Option<i64>, Option<i64>, f64) = match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            let x = a.as_primitive::<TimestampSecondType>();
            (min(x), max(x), 0.001)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let x = a.as_primitive::<TimestampMillisecondType>();
            (min(x), max(x), 1.0)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let x = a.as_primitive::<TimestampMicrosecondType>();
            (min(x), max(x), 1000.0)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let x = a.as_primitive::<TimestampNanosecondType>();
            (min(x), max(x), 1_000_000.0)
        }
        DataType::Date32 => {
            let x = a.as_primitive::<Date32Type>();
            (
                min(x).map(i64::from),
                max(x).map(i64::from),
                1.0 / 86_400_000.0,
            )
        }
        DataType::Date64 => {
            let x = a.as_primitive::<Date64Type>();
            (min(x), max(x), 1.0)
        }
        _ => return None,
    };
    if a.null_count() == a.len() {
        return None;
    }
    // Floor the lower bound and ceil the upper one: the range must contain
    // every value once converted to milliseconds.
    let lo = (lo? as f64 / per_ms).floor() as i64;
    let hi = (hi? as f64 / per_ms).ceil() as i64;
    Some((lo, hi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Date32Array, TimestampMicrosecondArray};
    use std::sync::Arc;

    #[test]
    fn bounds_in_milliseconds() {
        let a: ArrayRef = Arc::new(
            TimestampMicrosecondArray::from(vec![Some(5_500), None, Some(-1_500)])
                .with_timezone("UTC"),
        );
        assert_eq!(bounds_ms(&a), Some((-2, 6)));
        let d: ArrayRef = Arc::new(Date32Array::from(vec![1, 2]));
        assert_eq!(bounds_ms(&d), Some((86_400_000, 172_800_000)));
        let none: ArrayRef = Arc::new(Date32Array::from(vec![None::<i32>]));
        assert_eq!(bounds_ms(&none), None);
    }
}
