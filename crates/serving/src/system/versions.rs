//! `lambdadb.view_versions`: every kept batch version of every view, with what
//! its run cost, so an operator can pick one for `ROLLBACK TO VERSION` and see
//! whether incremental refreshes stay cheap.

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;

use super::columns::ts_field;
use crate::engine::Engine;

/// One row per kept version of each view, oldest first.
pub(super) fn view_versions(engine: &Engine) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("view_name", DataType::Utf8, false),
        Field::new("version", DataType::Int64, false),
        Field::new("serving", DataType::Boolean, false),
        Field::new("how", DataType::Utf8, false),
        Field::new("watermark", DataType::Utf8, false),
        Field::new("rows", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("input_files", DataType::Int64, false),
        Field::new("input_rows", DataType::Int64, false),
        ts_field("created"),
        Field::new("duration_ms", DataType::Int64, false),
        Field::new("current_definition", DataType::Boolean, false),
        // Files holding the version's rows: 1, or its chain's (see docs/batch-layer.md).
        Field::new("files", DataType::Int64, false),
        // Where the run executed: local, or ballista (`batch_engine`).
        Field::new("engine", DataType::Utf8, false),
    ]));
    let (mut name, mut ver, mut serving, mut how, mut wm) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut rows, mut bytes, mut files, mut in_rows, mut at, mut ms, mut same) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut chain, mut engines) = (vec![], vec![]);
    let mut views = engine.views();
    views.sort_by(|a, b| a.name.cmp(&b.name));
    for view in views {
        let served = view.current().map(|v| v.version);
        for v in view.history().versions {
            name.push(view.name.clone());
            ver.push(v.version as i64);
            serving.push(Some(v.version) == served);
            how.push(v.how.as_str());
            wm.push(v.watermark.to_string());
            rows.push(v.rows as i64);
            bytes.push(v.bytes as i64);
            files.push(v.input_files as i64);
            in_rows.push(v.input_rows as i64);
            at.push(Some(v.refreshed_at_ms));
            ms.push(v.duration_ms as i64);
            same.push(v.definition == view.definition);
            chain.push(v.files().count() as i64);
            engines.push(v.engine.clone());
        }
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(name)),
        Arc::new(Int64Array::from(ver)),
        Arc::new(BooleanArray::from(serving)),
        Arc::new(StringArray::from(how)),
        Arc::new(StringArray::from(wm)),
        Arc::new(Int64Array::from(rows)),
        Arc::new(Int64Array::from(bytes)),
        Arc::new(Int64Array::from(files)),
        Arc::new(Int64Array::from(in_rows)),
        Arc::new(TimestampMillisecondArray::from(at).with_timezone("UTC")),
        Arc::new(Int64Array::from(ms)),
        Arc::new(BooleanArray::from(same)),
        Arc::new(Int64Array::from(chain)),
        Arc::new(StringArray::from(engines)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
