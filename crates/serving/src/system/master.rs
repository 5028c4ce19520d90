//! `lambdadb.master_dataset`: one row per source table's Delta table, with
//! the figures that show whether compaction keeps up (files, sizes) and where
//! the table lives for outside readers.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;

use super::columns::ts_field;
use crate::engine::Engine;

/// One row per source.
pub(super) fn master_dataset(engine: &Engine) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("location", DataType::Utf8, false),
        Field::new("table_version", DataType::Int64, false),
        Field::new("files", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("smallest_file_bytes", DataType::Int64, true),
        Field::new("largest_file_bytes", DataType::Int64, true),
        ts_field("oldest_event_time"),
        ts_field("newest_event_time"),
        Field::new("compactions", DataType::Int64, false),
        ts_field("last_compaction"),
        Field::new("files_awaiting_deletion", DataType::Int64, false),
        Field::new("retention", DataType::Utf8, true),
        ts_field("retention_horizon"),
        Field::new("expired_files", DataType::Int64, false),
        Field::new("retention_held_files", DataType::Int64, false),
    ]));
    let (mut keep, mut horizon, mut expired, mut held) = (vec![], vec![], vec![], vec![]);
    let (mut name, mut loc, mut ver, mut files, mut bytes, mut rows) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut small, mut large, mut oldest, mut newest, mut runs, mut last, mut retired) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for s in engine.sources() {
        let m = s.manifest();
        name.push(s.spec.name.clone());
        loc.push(s.store().url.to_string());
        ver.push(m.version as i64);
        files.push(m.files.len() as i64);
        bytes.push(m.bytes() as i64);
        rows.push(m.rows() as i64);
        small.push(m.files.iter().map(|f| f.bytes as i64).min());
        large.push(m.files.iter().map(|f| f.bytes as i64).max());
        oldest.push(
            m.files
                .iter()
                .filter_map(|f| f.event_time_ms.map(|t| t.0))
                .min(),
        );
        newest.push(
            m.files
                .iter()
                .filter_map(|f| f.event_time_ms.map(|t| t.1))
                .max(),
        );
        runs.push(s.upkeep.compactions.load(Ordering::Relaxed) as i64);
        let at = s.upkeep.last_compaction_ms.load(Ordering::Relaxed);
        last.push((at > 0).then_some(at));
        retired.push(s.upkeep.retired_files() as i64);
        keep.push(s.upkeep.retention().map(crate::alter::retention_text));
        let h = s.upkeep.retention_horizon_ms.load(Ordering::Relaxed);
        horizon.push((h != 0).then_some(h));
        expired.push(s.upkeep.expired_files.load(Ordering::Relaxed) as i64);
        held.push(s.upkeep.held_files.load(Ordering::Relaxed) as i64);
    }
    let ts = |v: Vec<Option<i64>>| TimestampMillisecondArray::from(v).with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(name)),
        Arc::new(StringArray::from(loc)),
        Arc::new(Int64Array::from(ver)),
        Arc::new(Int64Array::from(files)),
        Arc::new(Int64Array::from(bytes)),
        Arc::new(Int64Array::from(rows)),
        Arc::new(Int64Array::from(small)),
        Arc::new(Int64Array::from(large)),
        Arc::new(ts(oldest)),
        Arc::new(ts(newest)),
        Arc::new(Int64Array::from(runs)),
        Arc::new(ts(last)),
        Arc::new(Int64Array::from(retired)),
        Arc::new(StringArray::from(keep)),
        Arc::new(ts(horizon)),
        Arc::new(Int64Array::from(expired)),
        Arc::new(Int64Array::from(held)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
