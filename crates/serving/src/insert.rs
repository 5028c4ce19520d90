//! `INSERT INTO <source> ...` by an admin: the rows are produced to the
//! source's Kafka topic as JSON (the log stays the single source of truth), and
//! the statement returns once they are consumed, so the session reads its own
//! writes. Nothing is written anywhere else.
//!
//! - The producer is idempotent (`enable.idempotence`): librdkafka's retries
//!   of a send never write a message twice.
//! - NaN and infinities travel as JSON strings ("NaN", "inf", "-inf"), which
//!   the decoder reads back into float columns (JSON numbers cannot hold them).
//! - Not inside `BEGIN ... COMMIT`: a produced row cannot be rolled back, so
//!   the session refuses it there (25001), as PostgreSQL refuses statements
//!   that cannot run in a transaction block.
//! - If the rows are not visible within 30 s (a stopped or paused partition),
//!   the statement fails with 55000 saying the rows are in Kafka and must not
//!   be inserted again.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, RecordBatch, new_null_array};
use arrow::compute::cast;
use arrow::json::LineDelimitedWriter;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{Statement, TableObject};
use lambdadb_pgcompat::naming::object_name;
use lambdadb_pgcompat::{QueryError, Result};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::engine::Engine;
use crate::source::SourceState;

/// How long an INSERT waits for its rows to come back through the consumer.
const VISIBLE_WITHIN: Duration = Duration::from_secs(30);

/// Lays `batches` (columns `columns` of the source, in that order) out as the
/// source's declared schema: absent columns are NULL, values cast to the
/// declared types; a NULL in a NOT NULL column is refused (23502).
pub fn to_source_rows(
    source: &SourceState,
    columns: &[String],
    batches: &[RecordBatch],
) -> Result<Vec<RecordBatch>> {
    let schema = source.spec.schema.clone();
    for c in columns {
        if schema.field_with_name(c).is_err() {
            return Err(QueryError::UndefinedColumn(format!(
                "column \"{c}\" of relation \"{}\" does not exist",
                source.spec.name
            )));
        }
    }
    batches
        .iter()
        .map(|b| {
            if b.num_columns() != columns.len() {
                return Err(QueryError::Syntax(format!(
                    "INSERT has {} target columns but {} values",
                    columns.len(),
                    b.num_columns()
                )));
            }
            let cols = schema
                .fields()
                .iter()
                .map(|f| -> Result<ArrayRef> {
                    let a = match columns.iter().position(|c| c == f.name()) {
                        Some(i) => cast(b.column(i), f.data_type())
                            .map_err(|e| QueryError::InvalidParameter(e.to_string()))?,
                        None => new_null_array(f.data_type(), b.num_rows()),
                    };
                    if !f.is_nullable() && a.null_count() > 0 {
                        return Err(QueryError::NotNullViolation(format!(
                            "null value in column \"{}\" of relation \"{}\" violates not-null constraint",
                            f.name(),
                            source.spec.name
                        )));
                    }
                    Ok(a)
                })
                .collect::<Result<Vec<_>>>()?;
            RecordBatch::try_new(schema.clone(), cols)
                .map_err(|e| QueryError::Internal(e.to_string()))
        })
        .collect()
}

/// Produces the rows and waits until the consumer has read past them.
pub async fn produce(
    producer: &FutureProducer,
    source: &Arc<SourceState>,
    batches: &[RecordBatch],
) -> Result<u64> {
    let mut lines = Vec::new();
    {
        let mut w = LineDelimitedWriter::new(&mut lines);
        for b in batches {
            let b = non_finite_as_text(b)?;
            w.write(&b)
                .map_err(|e| QueryError::Internal(format!("cannot encode the rows: {e}")))?;
        }
        w.finish()
            .map_err(|e| QueryError::Internal(format!("cannot encode the rows: {e}")))?;
    }
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    let mut n = 0u64;
    for line in lines.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(&source.spec.topic).payload(line);
        let delivery = producer
            .send(record, Timeout::After(Duration::from_secs(10)))
            .await
            .map_err(|(e, _)| {
                QueryError::Unavailable(format!(
                    "the broker did not accept the rows ({e}); {n} of them were written, the rest were not"
                ))
            })?;
        let e = last.entry(delivery.partition).or_insert(delivery.offset);
        *e = (*e).max(delivery.offset);
        n += 1;
    }
    let deadline = Instant::now() + VISIBLE_WITHIN;
    loop {
        let consumed = source.consumed();
        let missing: Vec<(i32, i64)> = last
            .iter()
            .filter(|(p, o)| consumed.next(**p) <= **o)
            .map(|(p, o)| (*p, *o))
            .collect();
        if missing.is_empty() {
            return Ok(n);
        }
        let stopped: Vec<String> = missing
            .iter()
            .filter_map(|(p, _)| source.stopped(*p))
            .collect();
        if !stopped.is_empty() || Instant::now() >= deadline {
            let why = match stopped.first() {
                Some(reason) => format!("its partition is stopped: {reason}"),
                None => format!(
                    "lambdadb has not consumed them within {} s (see lambdadb.sources for the partition's status)",
                    VISIBLE_WITHIN.as_secs()
                ),
            };
            return Err(QueryError::NotInPrerequisiteState(format!(
                "the {n} rows were written to Kafka (topic {}, up to partition/offset {missing:?}) but are not visible: {why}. \
                 Do not run the INSERT again (that would write them twice); they appear once the partition is consumed.",
                source.spec.topic
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Float columns holding NaN or infinities as text: the JSON writer would
/// write them as null (JSON numbers cannot hold them).
fn non_finite_as_text(b: &RecordBatch) -> Result<RecordBatch> {
    use arrow::array::AsArray;
    use arrow::datatypes::{DataType, Field, Float32Type, Float64Type, Schema};
    let non_finite = |a: &ArrayRef| match a.data_type() {
        DataType::Float64 => a
            .as_primitive::<Float64Type>()
            .iter()
            .any(|v| v.is_some_and(|v| !v.is_finite())),
        DataType::Float32 => a
            .as_primitive::<Float32Type>()
            .iter()
            .any(|v| v.is_some_and(|v| !v.is_finite())),
        _ => false,
    };
    let as_text: Vec<bool> = b.columns().iter().map(non_finite).collect();
    if !as_text.contains(&true) {
        return Ok(b.clone());
    }
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for ((f, a), text) in b.schema().fields().iter().zip(b.columns()).zip(as_text) {
        if text {
            fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
            columns
                .push(cast(a, &DataType::Utf8).map_err(|e| QueryError::Internal(e.to_string()))?);
        } else {
            fields.push(f.as_ref().clone());
            columns.push(a.clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| QueryError::Internal(e.to_string()))
}

/// `INSERT INTO <source> [(columns)] <query>`, recognised before planning.
#[derive(Debug, Clone)]
pub struct InsertStatement {
    /// The source table the rows go to (the name's last part, unquoted).
    pub table: String,
    /// The target columns as written (empty: all, in declared order).
    pub columns: Vec<String>,
    /// The VALUES list or query producing the rows.
    pub query: String,
}

/// `INSERT INTO <source table> ...`; other INSERTs are left to the plan check.
pub fn statement(engine: &Engine, stmt: &Statement) -> Option<InsertStatement> {
    let Statement::Insert(ins) = stmt else {
        return None;
    };
    let TableObject::TableName(name) = &ins.table else {
        return None;
    };
    let table = object_name(name);
    engine.source(&table)?;
    let columns = ins.columns.iter().map(object_name).collect();
    let query = ins.source.as_ref()?.to_string();
    Some(InsertStatement {
        table,
        columns,
        query,
    })
}

/// Plans the rows (VALUES or a query, with the statement's parameters) and
/// produces them; returns how many.
pub async fn run(
    engine: &Engine,
    ctx: &SessionContext,
    insert: &InsertStatement,
    params: Vec<ScalarValue>,
) -> Result<u64> {
    let table = insert.table.as_str();
    let source = engine.source(table).ok_or_else(|| {
        QueryError::UndefinedTable(format!("relation \"{table}\" does not exist"))
    })?;
    let mut df = ctx.sql(&insert.query).await?;
    if !params.is_empty() {
        df = df.with_param_values(params)?;
    }
    let batches = df.collect().await?;
    let columns: Vec<String> = if insert.columns.is_empty() {
        source
            .spec
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect()
    } else {
        insert.columns.clone()
    };
    let rows = to_source_rows(&source, &columns, &batches)?;
    produce(engine.producer()?, &source, &rows).await
}
