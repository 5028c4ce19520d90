//! Result types as PostgreSQL gives them where DataFusion's differ:
//! `sum(bigint)` is `numeric` (DataFusion: bigint, which can overflow) and
//! `extract(...)` / `date_part(...)` is `numeric` (PostgreSQL 14+; DataFusion:
//! integer, double for epoch, and whole seconds for `second`). Both wrap
//! DataFusion's own functions and are registered in every context that plans
//! user SQL, batch runs included, so batch and speed partial states agree.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Decimal128Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::functions::datetime::date_part;
use datafusion::functions_aggregate::sum::sum_udaf;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::{
    Accumulator, AggregateUDF, AggregateUDFImpl, ColumnarValue, GroupsAccumulator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::scalar::ScalarValue;
use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;

/// A context with PostgreSQL's result types registered; `runtime` shares a
/// session's memory pool where given.
pub fn context(config: SessionConfig, runtime: Option<Arc<RuntimeEnv>>) -> SessionContext {
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_default_features()
        // PostgreSQL's OID alias types (`regclass`, `regtype`, ...) as type
        // names, which catalog queries cast to.
        .with_type_planner(Arc::new(PgOidTypePlanner));
    if let Some(rt) = runtime {
        state = state.with_runtime_env(rt);
    }
    let ctx = SessionContext::new_with_state(state.build());
    ctx.register_udaf(AggregateUDF::new_from_impl(PgSum::new()));
    ctx.register_udf(ScalarUDF::new_from_impl(PgDatePart::new(true)));
    ctx.register_udf(ScalarUDF::new_from_impl(PgDatePart::new(false)));
    use datafusion::execution::FunctionRegistry as _;
    if let Ok(inner) = ctx.udf("date_trunc") {
        ctx.register_udf(crate::datetrunc::UtcDateTrunc::udf(inner));
    }
    crate::bounds::register(&ctx);
    ctx
}

/// `sum` with bigint input summed as `numeric(20,0)` (result `numeric(30,0)`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgSum {
    inner: Arc<AggregateUDF>,
    signature: Signature,
}

impl PgSum {
    fn new() -> Self {
        Self {
            inner: sum_udaf(),
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl AggregateUDFImpl for PgSum {
    fn name(&self) -> &str {
        "sum"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn coerce_types(&self, args: &[DataType]) -> Result<Vec<DataType>> {
        let [arg] = args else {
            return Err(DataFusionError::Plan(
                "sum takes exactly one argument".into(),
            ));
        };
        // Coercion must be idempotent: the analyzer may run it again on the
        // already coerced type. So small integers stay as they are (widened to
        // bigint in `accumulator`), else a second pass would turn the bigint they
        // became into numeric.
        Ok(vec![match arg {
            DataType::Int64 | DataType::UInt64 => DataType::Decimal128(20, 0),
            t if is_small_int(t) => t.clone(),
            DataType::Float16 | DataType::Float32 | DataType::Float64 => DataType::Float64,
            DataType::Null => DataType::Int64,
            other
                if other.is_numeric()
                    || matches!(other, DataType::Duration(_) | DataType::Interval(_)) =>
            {
                other.clone()
            }
            DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => DataType::Float64,
            other => {
                return Err(DataFusionError::Plan(format!(
                    "function sum({other}) does not exist; sum takes numbers or intervals"
                )));
            }
        }])
    }

    fn return_type(&self, args: &[DataType]) -> Result<DataType> {
        if args.first().is_some_and(is_small_int) {
            return Ok(DataType::Int64);
        }
        self.inner.return_type(args)
    }

    fn accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        let widen = args
            .expr_fields
            .first()
            .is_some_and(|f| is_small_int(f.data_type()));
        let inner = self.inner.accumulator(args)?;
        Ok(if widen {
            Box::new(Widened(inner))
        } else {
            inner
        })
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        self.inner.state_fields(args)
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs) -> bool {
        self.inner.groups_accumulator_supported(args)
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        let widen = args
            .expr_fields
            .first()
            .is_some_and(|f| is_small_int(f.data_type()));
        let inner = self.inner.create_groups_accumulator(args)?;
        Ok(if widen {
            Box::new(WidenedGroups(inner))
        } else {
            inner
        })
    }

    fn create_sliding_accumulator(&self, args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        self.inner.create_sliding_accumulator(args)
    }

    fn reverse_expr(&self) -> datafusion::logical_expr::ReversedUDAF {
        self.inner.reverse_udf()
    }

    fn order_sensitivity(&self) -> datafusion::logical_expr::utils::AggregateOrderSensitivity {
        datafusion::logical_expr::utils::AggregateOrderSensitivity::Insensitive
    }
}

fn is_small_int(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
    )
}

fn widen(values: &[ArrayRef]) -> Result<Vec<ArrayRef>> {
    values
        .iter()
        .map(|v| Ok(arrow::compute::cast(v, &DataType::Int64)?))
        .collect()
}

/// The bigint sum's accumulator fed with integers widened to bigint.
#[derive(Debug)]
struct Widened(Box<dyn Accumulator>);

impl Accumulator for Widened {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        self.0.update_batch(&widen(values)?)
    }
    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        self.0.merge_batch(states)
    }
    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        self.0.state()
    }
    fn evaluate(&mut self) -> Result<ScalarValue> {
        self.0.evaluate()
    }
    fn size(&self) -> usize {
        self.0.size()
    }
}

struct WidenedGroups(Box<dyn GroupsAccumulator>);

impl GroupsAccumulator for WidenedGroups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&arrow::array::BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.0
            .update_batch(&widen(values)?, group_indices, opt_filter, total_num_groups)
    }
    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.0.merge_batch(values, group_indices, total_num_groups)
    }
    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&arrow::array::BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        self.0.convert_to_state(&widen(values)?, opt_filter)
    }
    fn evaluate(&mut self, emit_to: datafusion::logical_expr::EmitTo) -> Result<ArrayRef> {
        self.0.evaluate(emit_to)
    }
    fn state(&mut self, emit_to: datafusion::logical_expr::EmitTo) -> Result<Vec<ArrayRef>> {
        self.0.state(emit_to)
    }
    fn size(&self) -> usize {
        self.0.size()
    }
}

/// `extract` (registered as `pg_extract`, which EXTRACT is rewritten to)
/// returns `numeric`: scale 6 for `epoch` and `second` (with the fraction, as
/// PostgreSQL), 3 for `millisecond`, else 0. `date_part` returns the same
/// values as `double precision`, as PostgreSQL's does.
#[derive(Debug, PartialEq, Eq, Hash)]
struct PgDatePart {
    inner: Arc<ScalarUDF>,
    signature: Signature,
    numeric: bool,
}

/// The name `extract` is registered under and `EXTRACT(field FROM x)` is rewritten to.
pub const EXTRACT_FUNCTION: &str = "pg_extract";

impl PgDatePart {
    fn new(numeric: bool) -> Self {
        let inner = date_part();
        let signature = inner.signature().clone();
        Self {
            inner,
            signature,
            numeric,
        }
    }

    fn out_type(&self, scale: i8) -> DataType {
        if self.numeric {
            DataType::Decimal128(38, scale)
        } else {
            DataType::Float64
        }
    }
}

/// (field DataFusion computes, scale of the result): DataFusion's
/// `microsecond` counts the seconds field in microseconds, read at scale 6 as
/// seconds or at scale 3 as milliseconds.
fn plan_part(part: &str) -> (&'static str, i8) {
    match part.trim().to_ascii_lowercase().as_str() {
        "epoch" => ("epoch", 6),
        "second" | "seconds" | "s" | "sec" | "secs" => ("microsecond", 6),
        "millisecond" | "milliseconds" | "ms" | "msec" | "msecs" | "msecond" | "mseconds" => {
            ("microsecond", 3)
        }
        _ => ("", 0),
    }
}

impl ScalarUDFImpl for PgDatePart {
    fn name(&self) -> &str {
        if self.numeric {
            EXTRACT_FUNCTION
        } else {
            "date_part"
        }
    }

    fn aliases(&self) -> &[String] {
        if self.numeric {
            &[]
        } else {
            self.inner.aliases()
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Err(DataFusionError::Internal(
            "date_part's type comes from return_field_from_args".into(),
        ))
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        // The inner function validates the part name.
        let inner = self.inner.return_field_from_args(ReturnFieldArgs {
            arg_fields: args.arg_fields,
            scalar_arguments: args.scalar_arguments,
        })?;
        let part = args
            .scalar_arguments
            .first()
            .copied()
            .flatten()
            .and_then(|s| s.try_as_str().flatten())
            .unwrap_or("");
        let (_, scale) = plan_part(part);
        Ok(Arc::new(Field::new(
            self.name(),
            self.out_type(scale),
            inner.is_nullable(),
        )))
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let part = match &args.args[0] {
            ColumnarValue::Scalar(s) => s.try_as_str().flatten().unwrap_or("").to_string(),
            _ => String::new(),
        };
        let (computed, scale) = plan_part(&part);
        if !computed.is_empty() {
            args.args[0] = ColumnarValue::Scalar(ScalarValue::Utf8(Some(computed.into())));
        }
        let is_scalar = matches!(args.args[1], ColumnarValue::Scalar(_));
        let n = args.number_rows;
        // The implementation itself: the ScalarUDF wrapper would check the
        // result against this function's (numeric) return field.
        let arr = self.inner.inner().invoke_with_args(args)?.to_array(n)?;
        let decimal: ArrayRef = if computed == "epoch" {
            // Seconds as a double; microseconds are exact within 2^53.
            let secs = arr.as_primitive::<Float64Type>();
            let micros: Decimal128Array = secs
                .iter()
                .map(|v| v.map(|s| (s * 1e6).round() as i128))
                .collect();
            Arc::new(micros.with_precision_and_scale(38, scale)?)
        } else if scale > 0 {
            // Whole units of 10^-scale seconds: reinterpret, do not rescale.
            let units = cast(&arr, &DataType::Int64)?;
            let units: Decimal128Array = units
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .map(|v| v.map(i128::from))
                .collect();
            Arc::new(units.with_precision_and_scale(38, scale)?)
        } else {
            cast(&arr, &DataType::Decimal128(38, 0))?
        };
        let decimal = if self.numeric {
            decimal
        } else {
            cast(&decimal, &DataType::Float64)?
        };
        Ok(if is_scalar {
            ColumnarValue::Scalar(ScalarValue::try_from_array(decimal.as_ref(), 0)?)
        } else {
            ColumnarValue::Array(decimal)
        })
    }
}
