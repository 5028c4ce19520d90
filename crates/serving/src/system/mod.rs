//! System tables of schema `lambdadb`, built from live state when a query plans.

mod columns;
mod freshness;
mod master;
mod replicas;
mod versions;

use std::sync::Arc;

use arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::error::Result;

use crate::engine::Engine;
use columns::ts_field;

/// The names of the system tables of schema `lambdadb`.
pub const TABLES: &[&str] = &[
    "sources",
    "views",
    "rejected_messages",
    "freshness",
    "cache",
    "view_versions",
    "master_dataset",
    "replicas",
];

/// System table `name`, built from the engine's state now; `None` if there is none.
pub fn table(engine: &Engine, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
    let batch = match name {
        "sources" => sources(engine)?,
        "views" => views(engine)?,
        "rejected_messages" => rejected(engine)?,
        "freshness" => freshness::freshness(engine)?,
        "cache" => crate::resultcache::stats_batch(engine)?,
        "view_versions" => versions::view_versions(engine)?,
        "master_dataset" => master::master_dataset(engine)?,
        "replicas" => replicas::replicas(engine)?,
        _ => return Ok(None),
    };
    Ok(Some(Arc::new(MemTable::try_new(
        batch.schema(),
        vec![vec![batch]],
    )?)))
}

/// One row per source partition: offsets archived and consumed, rows, rejections.
fn sources(engine: &Engine) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("archived_offset", DataType::Int64, false),
        Field::new("consumed_offset", DataType::Int64, false),
        Field::new("broker_high_watermark", DataType::Int64, true),
        Field::new("lag_messages", DataType::Int64, true),
        Field::new("archived_rows", DataType::Int64, false),
        Field::new("archived_files", DataType::Int64, false),
        Field::new("speed_rows", DataType::Int64, false),
        Field::new("speed_bytes", DataType::Int64, false),
        Field::new("accepted_messages", DataType::Int64, false),
        Field::new("rejected_messages", DataType::Int64, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("lost_messages", DataType::Int64, false),
        Field::new("archive_failures", DataType::Int64, false),
    ]));
    let (mut lost, mut afail) = (vec![], vec![]);
    let (mut name, mut topic, mut part, mut archived, mut consumed) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut high, mut lag): (Vec<Option<i64>>, Vec<Option<i64>>) = (vec![], vec![]);
    let (mut arows, mut afiles, mut srows, mut sbytes, mut acc, mut rej, mut status) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for s in engine.sources() {
        let st = s.stats();
        let mut parts: Vec<i32> = st.consumed.partitions().map(|(p, _)| p).collect();
        parts.extend(st.archived.partitions().map(|(p, _)| p));
        parts.extend(st.health.failed.keys().copied());
        parts.sort();
        parts.dedup();
        if parts.is_empty() {
            parts.push(-1);
        }
        for p in parts {
            name.push(s.spec.name.clone());
            topic.push(s.spec.topic.clone());
            part.push(p);
            archived.push(st.archived.next(p));
            let at = st.consumed.next(p).max(st.archived.next(p));
            consumed.push(at);
            let h = st.high.get(&p).copied();
            high.push(h);
            lag.push(h.map(|h| (h - at).max(0)));
            arows.push(st.archived_rows as i64);
            afiles.push(st.archived_files as i64);
            srows.push(st.speed_rows as i64);
            sbytes.push(st.speed_bytes as i64);
            acc.push(st.accepted as i64);
            rej.push(st.rejected as i64);
            status.push(source_status(engine, &st, p));
            lost.push(st.health.lost.get(&p).copied().unwrap_or(0));
            afail.push(st.health.archive_failures as i64);
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(name)),
        Arc::new(StringArray::from(topic)),
        Arc::new(Int32Array::from(part)),
        Arc::new(Int64Array::from(archived)),
        Arc::new(Int64Array::from(consumed)),
        Arc::new(Int64Array::from(high)),
        Arc::new(Int64Array::from(lag)),
        Arc::new(Int64Array::from(arows)),
        Arc::new(Int64Array::from(afiles)),
        Arc::new(Int64Array::from(srows)),
        Arc::new(Int64Array::from(sbytes)),
        Arc::new(Int64Array::from(acc)),
        Arc::new(Int64Array::from(rej)),
        Arc::new(StringArray::from(status)),
        Arc::new(Int64Array::from(lost)),
        Arc::new(Int64Array::from(afail)),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// What a partition is doing, worst first: stopped, a consumer problem
/// (broker unreachable, topic missing), paused by back-pressure, archiving
/// failing, or consuming.
fn source_status(engine: &Engine, st: &crate::source::SourceStats, p: i32) -> String {
    let h = &st.health;
    if let Some(reason) = h.failed.get(&p) {
        return format!("stopped: {reason}");
    }
    if let Some(problem) = &h.consumer_problem {
        return format!("problem: {problem}");
    }
    if p < 0 {
        return "waiting for the topic".to_string();
    }
    let archive = h
        .archive_error
        .as_ref()
        .map(|e| {
            format!(
                "; archiving fails ({} failures so far): {e}",
                h.archive_failures
            )
        })
        .unwrap_or_default();
    if st.paused {
        let budget = engine.speed_budget();
        return format!(
            "paused: the speed layer holds {} MB, over speed_memory_limit ({} MB); consumption resumes when archiving frees memory{archive}",
            budget.used() >> 20,
            budget.limit() >> 20
        );
    }
    if !archive.is_empty() {
        return format!("consuming{archive}");
    }
    "consuming".to_string()
}

/// One row per materialized view: the batch version served and its watermark.
fn views(engine: &Engine) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("view_name", DataType::Utf8, false),
        Field::new("source_table", DataType::Utf8, false),
        Field::new("batch_version", DataType::Int64, false),
        Field::new("watermark", DataType::Utf8, false),
        Field::new("batch_rows", DataType::Int64, false),
        ts_field("last_refresh"),
        Field::new("refresh_ms", DataType::Int64, true),
        Field::new("speed_events", DataType::Int64, false),
        Field::new("speed_partial_rows", DataType::Int64, false),
        Field::new("speed_groups", DataType::Int64, false),
        Field::new("speed_bytes", DataType::Int64, false),
        ts_field("last_fold"),
        Field::new("folds", DataType::Int64, false),
        Field::new("fold_events", DataType::Int64, false),
        Field::new("fold_ms", DataType::Float64, false),
        Field::new("definition", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("refresh_how", DataType::Utf8, true),
        Field::new("refresh_input_rows", DataType::Int64, true),
        Field::new("versions_kept", DataType::Int64, false),
    ]));
    let (mut rhow, mut rin, mut kept) = (vec![], vec![], vec![]);
    let mut vstatus = vec![];
    let (mut nf, mut fe, mut fms) = (vec![], vec![], vec![]);
    let (mut sev, mut spr, mut sgr, mut sby, mut fat) = (vec![], vec![], vec![], vec![], vec![]);
    let (mut name, mut src, mut ver, mut wm, mut rows, mut at, mut ms, mut def) = (
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
        vec![],
    );
    for v in engine.views() {
        let cur = v.current();
        name.push(v.name.clone());
        src.push(v.source_name().to_string());
        ver.push(cur.as_ref().map(|c| c.version as i64).unwrap_or(0));
        wm.push(
            cur.as_ref()
                .map(|c| c.watermark.to_string())
                .unwrap_or_else(|| "{}".into()),
        );
        rows.push(cur.as_ref().map(|c| c.rows as i64).unwrap_or(0));
        at.push(cur.as_ref().map(|c| c.refreshed_at_ms));
        ms.push(cur.as_ref().map(|c| c.duration_ms as i64));
        rhow.push(cur.as_ref().map(|c| c.how.as_str()));
        rin.push(cur.as_ref().map(|c| c.input_rows as i64));
        kept.push(v.history().versions.len() as i64);
        let speed = v.speed().unwrap_or_default();
        let keys = v
            .plan
            .partial_schema
            .fields()
            .iter()
            .take_while(|f| f.name().starts_with("__g"))
            .count();
        sev.push(speed.folded_events as i64);
        spr.push(speed.segment_rows() as i64);
        sgr.push(speed.groups(keys) as i64);
        sby.push(speed.segment_bytes() as i64);
        fat.push((speed.folded_at_ms > 0).then_some(speed.folded_at_ms));
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        nf.push(load(&v.fold_stats.folds) as i64);
        fe.push(load(&v.fold_stats.events) as i64);
        fms.push(load(&v.fold_stats.micros) as f64 / 1000.0);
        def.push(v.definition.clone());
        vstatus.push(match v.last_error() {
            Some(e) => format!("failing: {e}"),
            None => "ok".to_string(),
        });
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(name)),
        Arc::new(StringArray::from(src)),
        Arc::new(Int64Array::from(ver)),
        Arc::new(StringArray::from(wm)),
        Arc::new(Int64Array::from(rows)),
        Arc::new(TimestampMillisecondArray::from(at).with_timezone("UTC")),
        Arc::new(Int64Array::from(ms)),
        Arc::new(Int64Array::from(sev)),
        Arc::new(Int64Array::from(spr)),
        Arc::new(Int64Array::from(sgr)),
        Arc::new(Int64Array::from(sby)),
        Arc::new(TimestampMillisecondArray::from(fat).with_timezone("UTC")),
        Arc::new(Int64Array::from(nf)),
        Arc::new(Int64Array::from(fe)),
        Arc::new(arrow::array::Float64Array::from(fms)),
        Arc::new(StringArray::from(def)),
        Arc::new(StringArray::from(vstatus)),
        Arc::new(StringArray::from(rhow)),
        Arc::new(Int64Array::from(rin)),
        Arc::new(Int64Array::from(kept)),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

/// The most recent rejected messages of every source (bounded by `rejected_keep`).
fn rejected(engine: &Engine) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("table_name", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("offset", DataType::Int64, false),
        Field::new("reason", DataType::Utf8, false),
        ts_field("rejected_at"),
    ]));
    let (mut name, mut topic, mut part, mut off, mut reason, mut at) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for s in engine.sources() {
        for r in s.rejected_messages() {
            name.push(s.spec.name.clone());
            topic.push(s.spec.topic.clone());
            part.push(r.partition);
            off.push(r.offset);
            reason.push(r.reason);
            at.push(Some(r.at_ms));
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(name)),
        Arc::new(StringArray::from(topic)),
        Arc::new(Int32Array::from(part)),
        Arc::new(Int64Array::from(off)),
        Arc::new(StringArray::from(reason)),
        Arc::new(TimestampMillisecondArray::from(at).with_timezone("UTC")),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}
