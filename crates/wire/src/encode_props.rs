//! Every value of every Arrow type a query can produce is encoded, in text and
//! in binary, as a PostgreSQL value or an error with a SQLSTATE, never a panic:
//! each type's extremes plus random values across its whole domain.

use std::sync::Arc;

use arrow::array::*;
use arrow::datatypes::*;
use arrow::record_batch::RecordBatch;
use pgwire::api::portal::Format;
use pgwire::error::PgWireError;
use rand::{Rng, SeedableRng};

use crate::encode::{encode_batch, field_infos};

const RANDOM: usize = 200;

fn ints<T: Copy>(extremes: &[T], random: impl Fn(&mut rand::rngs::StdRng) -> T) -> Vec<Option<T>> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut v: Vec<Option<T>> = extremes.iter().copied().map(Some).collect();
    v.push(None);
    v.extend((0..RANDOM).map(|_| Some(random(&mut rng))));
    v
}

/// One column per type, each holding its type's extremes, NULL and random values.
fn columns() -> Vec<ArrayRef> {
    let i64s = ints(&[i64::MIN, i64::MAX, 0, -1, 1], |r| r.random());
    let i32s = ints(&[i32::MIN, i32::MAX, 0, -1], |r| r.random());
    let f64s = ints(
        &[
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -0.0,
            f64::MIN,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
        ],
        |r| f64::from_bits(r.random()),
    );
    let f32s = ints(
        &[
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            f32::MIN,
            f32::MAX,
            f32::MIN_POSITIVE,
        ],
        |r| f32::from_bits(r.random()),
    );
    let i128s = ints(&[i128::MIN, i128::MAX, 0, -1], |r| r.random::<i128>());
    let bytes: Vec<Option<Vec<u8>>> = ints(&[0u8, 0xff, 0xc3], |r| r.random())
        .into_iter()
        .enumerate()
        .map(|(i, b)| b.map(|b| vec![b; i % 5]))
        .collect();
    let texts: Vec<Option<String>> = vec![
        Some(String::new()),
        Some("é\u{0}\u{10FFFF}'\"\\\t\n,".into()),
        Some("x".repeat(100_000)),
        None,
    ];
    let d128_max: i128 = "99999999999999999999999999999999999999".parse().unwrap();
    let ts = |unit: TimeUnit, tz: Option<&str>| -> ArrayRef {
        let a = Int64Array::from(i64s.clone());
        arrow::compute::cast(&a, &DataType::Timestamp(unit, tz.map(Into::into))).unwrap()
    };
    vec![
        Arc::new(BooleanArray::from(vec![Some(true), Some(false), None])),
        Arc::new(Int8Array::from(ints(&[i8::MIN, i8::MAX], |r| r.random()))),
        Arc::new(Int16Array::from(ints(&[i16::MIN, i16::MAX], |r| {
            r.random()
        }))),
        Arc::new(Int32Array::from(i32s.clone())),
        Arc::new(Int64Array::from(i64s.clone())),
        Arc::new(UInt8Array::from(ints(&[u8::MAX], |r| r.random()))),
        Arc::new(UInt16Array::from(ints(&[u16::MAX], |r| r.random()))),
        Arc::new(UInt32Array::from(ints(&[u32::MAX], |r| r.random()))),
        Arc::new(UInt64Array::from(ints(&[u64::MAX], |r| r.random()))),
        Arc::new(Float32Array::from(f32s)),
        Arc::new(Float64Array::from(f64s)),
        Arc::new(
            Decimal128Array::from(ints(&[-d128_max, d128_max, 0], |r| {
                r.random_range(-d128_max..=d128_max)
            }))
            .with_precision_and_scale(38, 10)
            .unwrap(),
        ),
        Arc::new(
            Decimal128Array::from(ints(&[-d128_max, d128_max], |r| {
                r.random_range(-d128_max..=d128_max)
            }))
            .with_precision_and_scale(38, 38)
            .unwrap(),
        ),
        Arc::new(
            Decimal256Array::from(
                i128s
                    .iter()
                    .map(|v| v.map(|v| i256::from_i128(v).wrapping_mul(i256::from_i128(v))))
                    .collect::<Vec<_>>(),
            )
            .with_precision_and_scale(76, 20)
            .unwrap(),
        ),
        Arc::new(StringArray::from(texts.clone())),
        Arc::new(LargeStringArray::from(texts.clone())),
        Arc::new(StringViewArray::from(texts)),
        Arc::new(BinaryArray::from_iter(bytes.clone())),
        Arc::new(LargeBinaryArray::from_iter(bytes.clone())),
        Arc::new(BinaryViewArray::from_iter(bytes)),
        Arc::new(Date32Array::from(i32s.clone())),
        Arc::new(Date64Array::from(i64s.clone())),
        ts(TimeUnit::Second, None),
        ts(TimeUnit::Millisecond, Some("UTC")),
        ts(TimeUnit::Microsecond, None),
        ts(TimeUnit::Microsecond, Some("UTC")),
        ts(TimeUnit::Microsecond, Some("+05:30")),
        ts(TimeUnit::Nanosecond, Some("UTC")),
        Arc::new(Time32SecondArray::from(i32s.clone())),
        Arc::new(Time64MicrosecondArray::from(i64s.clone())),
        Arc::new(IntervalYearMonthArray::from(i32s.clone())),
        Arc::new(IntervalDayTimeArray::from(
            i32s.iter()
                .map(|v| v.map(|v| IntervalDayTime::new(v, v)))
                .collect::<Vec<_>>(),
        )),
        Arc::new(IntervalMonthDayNanoArray::from(
            i64s.iter()
                .map(|v| v.map(|v| IntervalMonthDayNano::new(v as i32, v as i32, v)))
                .collect::<Vec<_>>(),
        )),
        Arc::new(DurationMicrosecondArray::from(i64s.clone())),
        Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(i32::MIN), None, Some(i32::MAX)]),
            None,
            Some(vec![]),
        ])),
        Arc::new(NullArray::new(3)),
    ]
}

fn sqlstate(e: &PgWireError) -> String {
    match e {
        PgWireError::UserError(info) => info.code.clone(),
        other => format!("{other}"),
    }
}

#[test]
fn every_value_encodes_or_errs() {
    for col in columns() {
        let dt = col.data_type().clone();
        let schema = Arc::new(Schema::new(vec![Field::new("c", dt.clone(), true)]));
        let batch = RecordBatch::try_new(schema.clone(), vec![col.clone()]).unwrap();
        for format in [Format::UnifiedText, Format::UnifiedBinary] {
            let fields = Arc::new(field_infos(&schema, &format));
            // Whole batch: an error names the first value that cannot be sent.
            let whole = encode_batch(&batch, &fields, None);
            // Value by value: every single one is a value or an error.
            let mut ok = 0;
            for r in 0..batch.num_rows() {
                if encode_batch(&batch.slice(r, 1), &fields, None).is_ok() {
                    ok += 1;
                }
            }
            if let Err(e) = &whole {
                assert!(ok < batch.num_rows(), "{dt}: {e}");
            }
            assert!(
                ok > 0 || batch.num_rows() <= 3,
                "{dt} {format:?}: no value encodes"
            );
        }
    }
}

#[test]
fn datetimes_beyond_the_encoder_are_22008() {
    let cases: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![i32::MAX])),
        Arc::new(TimestampMicrosecondArray::from(vec![i64::MAX]).with_timezone("UTC")),
        Arc::new(TimestampMicrosecondArray::from(vec![i64::MIN])),
    ];
    for col in cases {
        let schema = Arc::new(Schema::new(vec![Field::new(
            "c",
            col.data_type().clone(),
            true,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![col]).unwrap();
        for format in [Format::UnifiedText, Format::UnifiedBinary] {
            let fields = Arc::new(field_infos(&schema, &format));
            let e = encode_batch(&batch, &fields, None).unwrap_err();
            assert_eq!(sqlstate(&e), "22008", "{e}");
        }
    }
}
