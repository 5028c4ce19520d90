//! `lambdadb.freshness`: how fresh an answer from each source and view is. One
//! row per source and per materialized view, read when a query plans.
//!
//! - `consumed_offsets` / `broker_high_watermarks`: what the speed layer has read
//!   and what the broker holds, per partition (`{partition: next offset}`).
//! - `lag_messages`: messages on the broker not consumed yet; `lag_seconds`: how
//!   long the consumer has been behind (0 when caught up).
//! - `latest_event_time`: the newest event time consumed.
//! - For views, `batch_version`, `batch_watermark` and `batch_age_seconds` (since
//!   the version was published), and `events_above_batch`: consumed events the
//!   speed layer answers for.

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;
use lambdadb_common::Watermark;

use super::columns::ts_field;
use crate::engine::Engine;
use crate::source::now_ms;

#[derive(Default)]
struct Columns {
    name: Vec<String>,
    kind: Vec<&'static str>,
    source: Vec<String>,
    consumed: Vec<String>,
    high: Vec<String>,
    lag: Vec<i64>,
    lag_s: Vec<f64>,
    latest: Vec<Option<i64>>,
    version: Vec<Option<i64>>,
    watermark: Vec<Option<String>>,
    age: Vec<Option<f64>>,
    above: Vec<Option<i64>>,
}

fn high_text(high: &std::collections::BTreeMap<i32, i64>) -> String {
    let mut w = Watermark::new();
    for (p, h) in high {
        w.advance(*p, *h);
    }
    w.to_string()
}

pub fn freshness(engine: &Engine) -> Result<RecordBatch> {
    let mut c = Columns::default();
    let now = now_ms();
    let push_source_part = |c: &mut Columns, s: &crate::source::SourceState| {
        let st = s.stats();
        c.source.push(s.spec.name.clone());
        c.consumed.push(st.consumed.to_string());
        c.high.push(high_text(&st.high));
        c.lag.push(
            st.high
                .iter()
                .map(|(p, h)| (h - st.consumed.next(*p)).max(0))
                .sum(),
        );
        c.lag_s.push(s.lag_seconds());
        c.latest.push(s.max_event_ms());
        st.consumed
    };
    for s in engine.sources() {
        c.name.push(s.spec.name.clone());
        c.kind.push("source");
        push_source_part(&mut c, &s);
        c.version.push(None);
        c.watermark.push(None);
        c.age.push(None);
        c.above.push(None);
    }
    for v in engine.views() {
        c.name.push(v.name.clone());
        c.kind.push("materialized view");
        let consumed = push_source_part(&mut c, &v.source);
        let cur = v.current();
        c.version
            .push(Some(cur.as_ref().map(|c| c.version as i64).unwrap_or(0)));
        let wm = cur
            .as_ref()
            .map(|c| c.watermark.clone())
            .unwrap_or_default();
        c.watermark.push(Some(wm.to_string()));
        c.age.push(
            cur.as_ref()
                .map(|c| (now - c.refreshed_at_ms).max(0) as f64 / 1000.0),
        );
        let above: i64 = consumed
            .partitions()
            .map(|(p, n)| (n - wm.next(p)).max(0))
            .sum();
        c.above.push(Some(above));
    }
    let schema = Arc::new(Schema::new(vec![
        Field::new("name", DataType::Utf8, false),
        Field::new("kind", DataType::Utf8, false),
        Field::new("source_table", DataType::Utf8, false),
        Field::new("consumed_offsets", DataType::Utf8, false),
        Field::new("broker_high_watermarks", DataType::Utf8, false),
        Field::new("lag_messages", DataType::Int64, false),
        Field::new("lag_seconds", DataType::Float64, false),
        ts_field("latest_event_time"),
        Field::new("batch_version", DataType::Int64, true),
        Field::new("batch_watermark", DataType::Utf8, true),
        Field::new("batch_age_seconds", DataType::Float64, true),
        Field::new("events_above_batch", DataType::Int64, true),
    ]));
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(c.name)),
        Arc::new(StringArray::from(c.kind)),
        Arc::new(StringArray::from(c.source)),
        Arc::new(StringArray::from(c.consumed)),
        Arc::new(StringArray::from(c.high)),
        Arc::new(Int64Array::from(c.lag)),
        Arc::new(Float64Array::from(c.lag_s)),
        Arc::new(TimestampMillisecondArray::from(c.latest).with_timezone("UTC")),
        Arc::new(Int64Array::from(c.version)),
        Arc::new(StringArray::from(c.watermark)),
        Arc::new(Float64Array::from(c.age)),
        Arc::new(Int64Array::from(c.above)),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}
