//! Size arguments one statement cannot use to allocate without limit. The
//! memory pool (`query_memory_limit`, `memory_limit`) accounts for operators'
//! buffers, but a function that builds a value from a size argument allocates
//! it at once: `repeat('x', 2000000000)`, `lpad('', 1e9)`, `array_repeat(1,
//! 1e9)`, `generate_series(1, 1e10)` or a t-digest of a billion centroids would
//! take the whole process down before any pool is asked. These functions are
//! wrapped so that their result is sized first and refused (54000, PostgreSQL's
//! "requested length too large") beyond PostgreSQL's own 1 GB per value.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::config::ConfigOptions;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::FunctionRegistry;
use datafusion::logical_expr::expr::AggregateFunction;
use datafusion::logical_expr::{
    ColumnarValue, Expr, LogicalPlan, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature,
};
use datafusion::optimizer::AnalyzerRule;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

/// The largest value one call may build, in bytes (PostgreSQL's 1 GB field limit).
pub const MAX_VALUE_BYTES: i64 = 1 << 30;
/// The most array elements one call may build over a whole batch.
pub const MAX_ELEMENTS: i64 = 1 << 27;
/// The most t-digest centroids an `approx_percentile_cont` size may ask for.
pub const MAX_SKETCH_SIZE: i64 = 100_000;

/// How a function's result grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// `repeat(text, n)`: text length times n bytes.
    Repeat,
    /// `lpad`/`rpad(text, n [, fill])`: up to 4 bytes per character of n.
    Pad,
    /// `array_repeat(element, n)` / `array_resize(array, n)`: n elements.
    Elements,
    /// `generate_series`/`range(start, stop [, step])` as a value: the span over the step.
    Series,
}

const WRAPPED: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("array_repeat", Growth::Elements),
    ("array_resize", Growth::Elements),
    ("generate_series", Growth::Series),
    ("range", Growth::Series),
];

/// Wraps the sized functions of `ctx` and adds the sketch-size check.
pub fn register(ctx: &SessionContext) {
    for (name, growth) in WRAPPED {
        if let Ok(inner) = ctx.udf(name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner,
                growth: *growth,
            }));
        }
    }
    ctx.add_analyzer_rule(Arc::new(SketchSizes));
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
}

fn too_large(what: String) -> DataFusionError {
    DataFusionError::External(Box::new(crate::error::QueryError::ProgramLimit(what)))
}

/// Argument `i` per row as i64 (None: NULL or not a number), for `rows` rows.
fn ints(args: &[ColumnarValue], i: usize, rows: usize) -> Option<Vec<Option<i64>>> {
    let a = args.get(i)?.to_array(rows).ok()?;
    let a = cast(&a, &DataType::Int64).ok()?;
    Some(a.as_primitive::<Int64Type>().iter().collect())
}

/// Byte length of argument `i` per row (None: NULL).
fn lengths(args: &[ColumnarValue], i: usize, rows: usize) -> Option<Vec<Option<i64>>> {
    let a: ArrayRef = args.get(i)?.to_array(rows).ok()?;
    let a = cast(&a, &DataType::Utf8).ok()?;
    Some(
        a.as_string::<i32>()
            .iter()
            .map(|s| s.map(|s| s.len() as i64))
            .collect(),
    )
}

impl Bounded {
    /// Refuses a call whose result would exceed the bounds.
    fn check(&self, args: &[ColumnarValue], rows: usize) -> Result<()> {
        let rows = rows.max(1);
        let name = self.inner.name();
        let (per_row, limit, unit): (Vec<i64>, i64, &str) = match self.growth {
            Growth::Repeat => {
                let (Some(len), Some(n)) = (lengths(args, 0, rows), ints(args, 1, rows)) else {
                    return Ok(());
                };
                let sizes = len
                    .iter()
                    .zip(&n)
                    .map(|(l, n)| l.unwrap_or(0).saturating_mul(n.unwrap_or(0).max(0)))
                    .collect();
                (sizes, MAX_VALUE_BYTES, "bytes")
            }
            Growth::Pad => {
                let Some(n) = ints(args, 1, rows) else {
                    return Ok(());
                };
                let sizes = n
                    .iter()
                    .map(|n| n.unwrap_or(0).max(0).saturating_mul(4))
                    .collect();
                (sizes, MAX_VALUE_BYTES, "bytes")
            }
            Growth::Elements => {
                let Some(n) = ints(args, 1, rows) else {
                    return Ok(());
                };
                (
                    n.iter().map(|n| n.unwrap_or(0).max(0)).collect(),
                    MAX_ELEMENTS,
                    "elements",
                )
            }
            Growth::Series => {
                let (start, stop) = match args.len() {
                    1 => (Some(vec![Some(0); rows]), ints(args, 0, rows)),
                    _ => (ints(args, 0, rows), ints(args, 1, rows)),
                };
                // Dates and timestamps step by intervals: not sized here.
                let (Some(start), Some(stop)) = (start, stop) else {
                    return Ok(());
                };
                let step = if args.len() == 3 {
                    ints(args, 2, rows).unwrap_or_else(|| vec![Some(1); rows])
                } else {
                    vec![Some(1); rows]
                };
                let sizes = start
                    .iter()
                    .zip(&stop)
                    .zip(&step)
                    .map(|((a, b), s)| match (a, b, s) {
                        (Some(a), Some(b), Some(s)) if *s != 0 => {
                            (*b as i128 - *a as i128).abs() / (*s as i128).abs() + 1
                        }
                        _ => 0,
                    })
                    .map(|n| n.min(i64::MAX as i128) as i64)
                    .collect();
                (sizes, MAX_ELEMENTS, "elements")
            }
        };
        let mut total: i64 = 0;
        for size in per_row {
            if size > limit {
                return Err(too_large(format!(
                    "requested length too large: {name} would build a value of {size} {unit}, more than {limit}"
                )));
            }
            total = total.saturating_add(size);
        }
        if total > limit {
            return Err(too_large(format!(
                "requested length too large: {name} would build {total} {unit} for {rows} rows, more than {limit} in one call"
            )));
        }
        Ok(())
    }
}

impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.check(&args.args, args.number_rows)?;
        self.inner.invoke_with_args(args)
    }
}

/// Refuses `approx_percentile_cont(..., size)` sizes above [`MAX_SKETCH_SIZE`]:
/// the t-digest allocates its centroid buffer at that size up front.
#[derive(Debug)]
struct SketchSizes;

impl AnalyzerRule for SketchSizes {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| {
            for e in node.expressions() {
                e.apply(|x| {
                    if let Expr::AggregateFunction(AggregateFunction { func, params }) = x {
                        check_sketch_size(func.name(), &params.args)?;
                    }
                    Ok(datafusion::common::tree_node::TreeNodeRecursion::Continue)
                })?;
            }
            Ok(Transformed::no(node))
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "lambdadb_sketch_sizes"
    }
}

fn check_sketch_size(func: &str, args: &[Expr]) -> Result<()> {
    let position = match func {
        "approx_percentile_cont" => 2,
        "approx_percentile_cont_with_weight" => 3,
        _ => return Ok(()),
    };
    let Some(Expr::Literal(value, _)) = args.get(position) else {
        return Ok(());
    };
    let size = match value.cast_to(&DataType::Int64) {
        Ok(ScalarValue::Int64(Some(n))) => n,
        _ => return Ok(()),
    };
    if size > MAX_SKETCH_SIZE {
        return Err(too_large(format!(
            "{func} size {size} is larger than {MAX_SKETCH_SIZE} centroids; use a smaller size (100 is the default)"
        )));
    }
    Ok(())
}
