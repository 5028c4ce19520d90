//! `lambdadb.replicas`: this process as a replica of its deployment (its
//! role, whether it writes now, the writer lease as it last saw it, the
//! table versions it serves and how far it consumed), for operators and for
//! load balancers' health checks (`SELECT serving FROM lambdadb.replicas`).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMillisecondArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use datafusion::error::Result;

use super::columns::ts_field;
use crate::engine::Engine;

/// One row: this process.
pub(super) fn replicas(engine: &Engine) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("replica_id", DataType::Utf8, false),
        Field::new("role", DataType::Utf8, false),
        Field::new("address", DataType::Utf8, false),
        Field::new("writing", DataType::Boolean, false),
        Field::new("lease_holder", DataType::Utf8, true),
        Field::new("lease_address", DataType::Utf8, true),
        Field::new("lease_epoch", DataType::Int64, true),
        ts_field("lease_renewed_at"),
        ts_field("lease_expires_at"),
        Field::new("table_versions", DataType::Utf8, false),
        Field::new("consumed_offsets", DataType::Utf8, false),
        Field::new("lag_messages", DataType::Int64, false),
        Field::new("serving", DataType::Boolean, false),
    ]));
    let gate = engine.gate();
    let sources = engine.sources();
    let writing = !sources.is_empty() && sources.iter().all(|s| s.may_write())
        || sources.is_empty() && gate.epoch().is_some();
    let lease = gate.lease().and_then(|l| l.record());
    let versions: Vec<String> = sources
        .iter()
        .map(|s| format!("{}={}", s.spec.name, s.manifest().version))
        .collect();
    let mut consumed = Vec::new();
    let mut lag = 0i64;
    let mut healthy = true;
    for s in &sources {
        let st = s.stats();
        consumed.push(format!("{}={}", s.spec.name, st.consumed));
        for (p, high) in &st.high {
            lag += (high - st.consumed.next(*p)).max(0);
        }
        healthy &= st.health.failed.is_empty() && st.health.consumer_problem.is_none();
    }
    let ts = |v: Option<i64>| TimestampMillisecondArray::from(vec![v]).with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![engine.replica_id().to_string()])),
        Arc::new(StringArray::from(vec![gate.role()])),
        Arc::new(StringArray::from(vec![engine.config().listen.clone()])),
        Arc::new(BooleanArray::from(vec![writing])),
        Arc::new(StringArray::from(vec![
            lease.as_ref().map(|r| r.holder.clone()),
        ])),
        Arc::new(StringArray::from(vec![
            lease.as_ref().map(|r| r.address.clone()),
        ])),
        Arc::new(Int64Array::from(vec![lease.as_ref().map(|r| r.epoch)])),
        Arc::new(ts(lease.as_ref().map(|r| r.renewed_at_ms))),
        Arc::new(ts(lease.as_ref().map(|r| r.expires_at_ms))),
        Arc::new(StringArray::from(vec![versions.join(", ")])),
        Arc::new(StringArray::from(vec![consumed.join(", ")])),
        Arc::new(Int64Array::from(vec![lag])),
        Arc::new(BooleanArray::from(vec![healthy])),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
