//! The serving layer's side of the result cache (`lambdadb_cache`): which
//! statements may be cached, the snapshot versions they read, and collecting a
//! result as it streams to the client.
//!
//! A statement is cached when it reads only source tables, materialized views and
//! plain views, and calls no function whose value can change between two runs
//! over the same events (`now()`, `random()`, ...). Its versions are the catalog's
//! generation (any DDL changes it) and, per source it depends on, the total of the
//! consumed offsets. Both layers together answer exactly for the consumed events,
//! so the same consumed offsets mean the same answer whatever the batch layer did
//! in between: a view refreshed with no new events still hits.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, Int64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::Result as DfResult;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use datafusion::physical_plan::RecordBatchStream;
use futures::Stream;
use lambdadb_cache::{Entry, ResultCache, Versions, batches_bytes};
use lambdadb_pgcompat::vars::SessionVars;

use crate::engine::Engine;

pub use lambdadb_cache::CacheKey;

/// The version entry for DDL: bumped by every catalog change.
pub const CATALOG: &str = "#catalog";

/// The sources `plan` depends on, or `None` when it must not be cached.
pub fn dependencies(engine: &Engine, plan: &LogicalPlan) -> Option<Vec<String>> {
    let mut deps = Vec::new();
    let mut ok = true;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            ok &= table_dependencies(engine, &scan.table_name, &mut deps);
        }
        ok &= node
            .expressions()
            .iter()
            .all(|e| !e.exists(|x| Ok(changes_between_runs(x))).unwrap_or(true));
        Ok(if ok {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    deps.sort();
    deps.dedup();
    (ok && !deps.is_empty()).then_some(deps)
}

/// Adds the sources `table` reads to `deps`; false for tables that are not
/// sources or views (catalogs and system tables change without new events).
fn table_dependencies(
    engine: &Engine,
    table: &datafusion::common::TableReference,
    deps: &mut Vec<String>,
) -> bool {
    if table.schema().is_some_and(|s| s != "public") {
        return false;
    }
    let name = table.table();
    if let Some(s) = engine.source(name) {
        deps.push(s.spec.name.clone());
    } else if let Some(v) = engine.view(name) {
        deps.push(v.source_name().to_string());
    } else if engine.plain_view(name).is_some() {
        // What a plain view reads is decided when it is expanded: depend on
        // every source.
        deps.extend(engine.sources().iter().map(|s| s.spec.name.clone()));
    } else {
        return false;
    }
    true
}

/// A call whose value can differ between two runs over the same events.
fn changes_between_runs(e: &Expr) -> bool {
    matches!(e, Expr::ScalarFunction(f) if f.func.signature().volatility != Volatility::Immutable)
}

/// The version of one entry of a statement's versions now.
pub fn current(engine: &Engine, table: &str) -> Option<u64> {
    if table == CATALOG {
        return Some(engine.generation());
    }
    engine.source(table).map(|s| s.content_version())
}

/// The versions of `deps` now; read before the query takes its snapshot, so an
/// entry never claims newer data than it holds.
pub fn versions(engine: &Engine, deps: &[String]) -> Versions {
    let mut v = vec![(CATALOG.to_string(), engine.generation())];
    for d in deps {
        if let Some(n) = current(engine, d) {
            v.push((d.clone(), n));
        }
    }
    v
}

/// Passes a result through to the client and keeps a copy; the copy goes into the
/// cache when the stream ends (a result larger than one entry may be is dropped).
pub struct Collecting {
    inner: SendableRecordBatchStream,
    kept: Vec<RecordBatch>,
    bytes: usize,
    pending: Option<(Arc<ResultCache>, CacheKey, Versions)>,
}

impl Collecting {
    /// Streams `inner`; a result that ends without error is cached under `key` at `versions`.
    pub fn new(
        inner: SendableRecordBatchStream,
        cache: Arc<ResultCache>,
        key: CacheKey,
        versions: Versions,
    ) -> Self {
        Self {
            inner,
            kept: Vec::new(),
            bytes: 0,
            pending: Some((cache, key, versions)),
        }
    }
}

impl Stream for Collecting {
    type Item = DfResult<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let next = Pin::new(&mut this.inner).poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(b))) => {
                if let Some((cache, ..)) = &this.pending {
                    this.bytes += b.get_array_memory_size();
                    if this.bytes > cache.max_entry_bytes() {
                        this.pending = None;
                        this.kept.clear();
                    } else {
                        this.kept.push(b.clone());
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => this.pending = None,
            Poll::Ready(None) => {
                if let Some((cache, key, versions)) = this.pending.take() {
                    let batches = std::mem::take(&mut this.kept);
                    cache.insert(
                        key,
                        Entry {
                            schema: this.inner.schema(),
                            bytes: batches_bytes(&batches),
                            batches,
                            versions,
                            computed_at: Instant::now(),
                        },
                    );
                }
            }
            Poll::Pending => {}
        }
        next
    }
}

impl RecordBatchStream for Collecting {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

/// `lambdadb.cache`: one row of figures.
pub fn stats_batch(engine: &Engine) -> DfResult<RecordBatch> {
    let s = engine.cache().stats();
    let lookups = s.hits + s.stale_hits + s.misses;
    let rate = (lookups > 0).then(|| (s.hits + s.stale_hits) as f64 / lookups as f64);
    let schema = Arc::new(Schema::new(vec![
        Field::new("entries", DataType::Int64, false),
        Field::new("bytes", DataType::Int64, false),
        Field::new("capacity_bytes", DataType::Int64, false),
        Field::new("hits", DataType::Int64, false),
        Field::new("stale_hits", DataType::Int64, false),
        Field::new("misses", DataType::Int64, false),
        Field::new("inserts", DataType::Int64, false),
        Field::new("hit_rate", DataType::Float64, true),
    ]));
    let int = |v: u64| Arc::new(Int64Array::from(vec![v as i64])) as ArrayRef;
    Ok(RecordBatch::try_new(
        schema,
        vec![
            int(s.entries),
            int(s.bytes),
            int(s.capacity),
            int(s.hits),
            int(s.stale_hits),
            int(s.misses),
            int(s.inserts),
            Arc::new(Float64Array::from(vec![rate])),
        ],
    )?)
}

/// The cache key of `statement` run with `params` by this session, when the cache
/// may serve it.
pub fn key(
    engine: &Engine,
    vars: &SessionVars,
    statement: String,
    params: &[datafusion::scalar::ScalarValue],
) -> Option<CacheKey> {
    (engine.cache().enabled() && vars.result_cache()).then(|| CacheKey {
        statement,
        // Debug keeps the type and NULL apart from the text 'NULL'.
        params: params.iter().map(|p| format!("{p:?}")).collect(),
        user: vars.get("session_authorization").unwrap_or_default(),
        settings: vars.result_settings(),
    })
}

/// A cached answer for `key`, if one may be served now.
pub fn lookup(
    engine: &Engine,
    vars: &SessionVars,
    key: &CacheKey,
) -> Option<SendableRecordBatchStream> {
    let (entry, _) = engine
        .cache()
        .get(key, vars.max_staleness(), |t| current(engine, t))?;
    let batches: Vec<DfResult<RecordBatch>> = entry.batches.iter().cloned().map(Ok).collect();
    Some(Box::pin(
        datafusion::physical_plan::stream::RecordBatchStreamAdapter::new(
            entry.schema.clone(),
            futures::stream::iter(batches),
        ),
    ))
}

/// The simple protocol's key text: the statement with runs of whitespace
/// collapsed (no parsing, so that a hit costs no planning).
pub fn simple_text(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}
