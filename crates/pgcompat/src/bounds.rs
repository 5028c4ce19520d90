//! Size arguments one statement cannot use to allocate without limit. The
//! memory pool (`query_memory_limit`, `memory_limit`) accounts for operators'
//! buffers, but a function that builds a value from a size argument allocates
//! it at once: `repeat('x', 2000000000)`, `lpad('', 1e9)`, `array_repeat(1,
//! 1e9)`, `generate_series(1, 1e10)` or a t-digest of a billion centroids would
//! take the whole process down before any pool is asked. These functions are
//! wrapped so that their result is sized first and refused (54000, PostgreSQL's
//! "requested length too large") beyond PostgreSQL's own 1 GB per value.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Int64Array};
use arrow::compute::cast;
use arrow::compute::kernels::length::length;
use arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
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

/// One argument's numbers per row, read without materializing a scalar
/// argument into a whole column (this runs before every call).
enum PerRow {
    One(Option<i64>),
    Each(Int64Array),
}

impl PerRow {
    fn at(&self, row: usize) -> Option<i64> {
        match self {
            PerRow::One(v) => *v,
            PerRow::Each(a) => a.is_valid(row).then(|| a.value(row)),
        }
    }

    fn column(a: &ArrayRef) -> Option<Self> {
        let a = cast(a, &DataType::Int64).ok()?;
        Some(PerRow::Each(a.as_primitive::<Int64Type>().clone()))
    }
}

/// Argument `i` as integers (None: not a number, so not sized here).
fn ints(args: &[ColumnarValue], i: usize) -> Option<PerRow> {
    match args.get(i)? {
        ColumnarValue::Scalar(v) => match v.cast_to(&DataType::Int64).ok()? {
            ScalarValue::Int64(n) => Some(PerRow::One(n)),
            _ => None,
        },
        ColumnarValue::Array(a) => PerRow::column(a),
    }
}

/// Byte length of argument `i` (arrow's `length` kernel: no string is copied).
fn lengths(args: &[ColumnarValue], i: usize) -> Option<PerRow> {
    match args.get(i)? {
        ColumnarValue::Scalar(v) => {
            let text = v.cast_to(&DataType::Utf8).ok()?;
            let ScalarValue::Utf8(t) = text else {
                return None;
            };
            Some(PerRow::One(t.map(|t| t.len() as i64)))
        }
        ColumnarValue::Array(a) => PerRow::column(&length(a).ok()?),
    }
}

impl Bounded {
    /// The size of each row's result, in the growth's unit, with the argument
    /// readers built once for the call (None: an argument not sized here).
    fn sizes<'a>(&self, args: &'a [ColumnarValue]) -> Box<dyn Fn(usize) -> Option<i64> + 'a> {
        match self.growth {
            Growth::Repeat => {
                let (len, n) = (lengths(args, 0), ints(args, 1));
                Box::new(move |r| {
                    let (len, n) = (len.as_ref()?.at(r)?, n.as_ref()?.at(r)?);
                    Some(len.saturating_mul(n.max(0)))
                })
            }
            Growth::Pad => {
                let n = ints(args, 1);
                Box::new(move |r| Some(n.as_ref()?.at(r)?.max(0).saturating_mul(4)))
            }
            Growth::Elements => {
                let n = ints(args, 1);
                Box::new(move |r| Some(n.as_ref()?.at(r)?.max(0)))
            }
            Growth::Series => {
                // Dates and timestamps step by intervals: not sized here.
                let (start, stop) = match args.len() {
                    1 => (Some(PerRow::One(Some(0))), ints(args, 0)),
                    _ => (ints(args, 0), ints(args, 1)),
                };
                let step = match args.len() {
                    3 => ints(args, 2),
                    _ => Some(PerRow::One(Some(1))),
                };
                Box::new(move |r| {
                    let (a, b) = (start.as_ref()?.at(r)?, stop.as_ref()?.at(r)?);
                    let s = step.as_ref()?.at(r).filter(|s| *s != 0)?;
                    let n = (b as i128 - a as i128).abs() / (s as i128).abs() + 1;
                    Some(n.min(i64::MAX as i128) as i64)
                })
            }
        }
    }

    /// Refuses a call whose result would exceed the bounds.
    fn check(&self, args: &[ColumnarValue], rows: usize) -> Result<()> {
        let name = self.inner.name();
        let (limit, unit) = match self.growth {
            Growth::Repeat | Growth::Pad => (MAX_VALUE_BYTES, "bytes"),
            Growth::Elements | Growth::Series => (MAX_ELEMENTS, "elements"),
        };
        let size_of = self.sizes(args);
        let mut total: i64 = 0;
        for row in 0..rows.max(1) {
            let size = size_of(row).unwrap_or(0);
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
        // Read only: every node's expressions, borrowed, subqueries included.
        plan.apply_with_subqueries(|node| {
            node.apply_expressions(|e| {
                e.apply(|x| {
                    if let Expr::AggregateFunction(AggregateFunction { func, params }) = x {
                        check_sketch_size(func.name(), &params.args)?;
                    }
                    Ok(TreeNodeRecursion::Continue)
                })
            })
        })?;
        Ok(plan)
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
