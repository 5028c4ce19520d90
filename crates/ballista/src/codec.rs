//! Functions in plans sent to Ballista are named, not serialized, and each
//! side looks the name up in its own registry. lambdadb registers functions
//! of its own under some of DataFusion's names (`date_part`, `date_trunc`,
//! `sum`), while DataFusion's SQL planner still builds some calls with its
//! built-in directly (`EXTRACT(hour FROM t)` is the built-in `date_part`).
//! By name alone an executor would then run lambdadb's function where the
//! plan was typed for the built-in (seen: "Function 'date_part' returned
//! value of type 'Float64' while ... 'Int32'" was promised). This codec marks
//! a call of DataFusion's own function so that the other side decodes that
//! one; every other function is looked up by name as before.

use std::any::{Any, TypeId};
use std::sync::{Arc, LazyLock};

use ballista_core::serde::BallistaPhysicalExtensionCodec;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{AggregateUDF, ScalarUDF, WindowUDF};
use datafusion::physical_plan::{ExecutionPlan, PhysicalExpr};
use datafusion_proto::physical_plan::{PhysicalExtensionCodec, PhysicalProtoConverterExtension};

/// The mark: "DataFusion's built-in of this name".
const BUILTIN: &[u8] = b"datafusion";

static SCALAR: LazyLock<Vec<Arc<ScalarUDF>>> =
    LazyLock::new(datafusion::functions::all_default_functions);
static AGGREGATE: LazyLock<Vec<Arc<AggregateUDF>>> =
    LazyLock::new(datafusion::functions_aggregate::all_default_aggregate_functions);

/// Ballista's codec, with DataFusion's own functions marked.
#[derive(Debug, Default)]
pub struct Codec {
    inner: BallistaPhysicalExtensionCodec,
}

/// The implementing type behind a function (DataFusion's, or one of ours).
fn scalar_type(f: &ScalarUDF) -> TypeId {
    let f: &dyn Any = f.inner().as_ref();
    f.type_id()
}

fn aggregate_type(f: &AggregateUDF) -> TypeId {
    let f: &dyn Any = f.inner().as_ref();
    f.type_id()
}

fn named<'a, F>(
    list: &'a [Arc<F>],
    name: &str,
    names: impl Fn(&F) -> (&str, &[String]),
) -> Option<&'a Arc<F>> {
    list.iter().find(|f| {
        let (n, aliases) = names(f);
        n == name || aliases.iter().any(|a| a == name)
    })
}

impl Codec {
    pub(crate) fn shared() -> Arc<dyn PhysicalExtensionCodec> {
        Arc::new(Self::default())
    }
}

impl PhysicalExtensionCodec for Codec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        self.inner.try_decode(buf, inputs, ctx, proto_converter)
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        self.inner.try_encode(node, buf, proto_converter)
    }

    fn try_encode_udf(&self, node: &ScalarUDF, buf: &mut Vec<u8>) -> Result<()> {
        let builtin = named(&SCALAR, node.name(), |f| (f.name(), f.aliases()));
        if builtin.is_some_and(|b| scalar_type(b) == scalar_type(node)) {
            buf.extend_from_slice(BUILTIN);
            return Ok(());
        }
        self.inner.try_encode_udf(node, buf)
    }

    fn try_decode_udf(&self, name: &str, buf: &[u8]) -> Result<Arc<ScalarUDF>> {
        if buf == BUILTIN
            && let Some(f) = named(&SCALAR, name, |f| (f.name(), f.aliases()))
        {
            return Ok(f.clone());
        }
        self.inner.try_decode_udf(name, buf)
    }

    fn try_encode_udaf(&self, node: &AggregateUDF, buf: &mut Vec<u8>) -> Result<()> {
        let builtin = named(&AGGREGATE, node.name(), |f| (f.name(), f.aliases()));
        if builtin.is_some_and(|b| aggregate_type(b) == aggregate_type(node)) {
            buf.extend_from_slice(BUILTIN);
            return Ok(());
        }
        self.inner.try_encode_udaf(node, buf)
    }

    fn try_decode_udaf(&self, name: &str, buf: &[u8]) -> Result<Arc<AggregateUDF>> {
        if buf == BUILTIN
            && let Some(f) = named(&AGGREGATE, name, |f| (f.name(), f.aliases()))
        {
            return Ok(f.clone());
        }
        self.inner.try_decode_udaf(name, buf)
    }

    fn try_encode_udwf(&self, node: &WindowUDF, buf: &mut Vec<u8>) -> Result<()> {
        self.inner.try_encode_udwf(node, buf)
    }

    fn try_decode_udwf(&self, name: &str, buf: &[u8]) -> Result<Arc<WindowUDF>> {
        self.inner.try_decode_udwf(name, buf)
    }

    fn try_encode_expr(
        &self,
        node: &Arc<dyn PhysicalExpr>,
        buf: &mut Vec<u8>,
        ctx: &datafusion::physical_expr_common::physical_expr::proto_encode::PhysicalExprEncodeCtx<
            '_,
        >,
    ) -> Result<()> {
        self.inner.try_encode_expr(node, buf, ctx)
    }

    fn try_decode_expr(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn PhysicalExpr>],
        ctx: &datafusion::physical_expr_common::physical_expr::proto_decode::PhysicalExprDecodeCtx<
            '_,
        >,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        self.inner.try_decode_expr(buf, inputs, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A call of the built-in is marked and decodes to the built-in even
    /// where the registry holds another function of that name; lambdadb's
    /// own function is not marked (the other side finds it by name).
    #[test]
    fn builtins_are_marked_and_shadowing_functions_are_not() {
        let codec = Codec::default();
        let builtin = datafusion::functions::datetime::date_part();
        let mut buf = Vec::new();
        codec.try_encode_udf(&builtin, &mut buf).unwrap();
        assert_eq!(buf, BUILTIN);
        let back = codec.try_decode_udf("date_part", &buf).unwrap();
        assert_eq!(scalar_type(&back), scalar_type(&builtin));

        #[derive(Debug, PartialEq, Eq, Hash)]
        struct Shadow(datafusion::logical_expr::Signature);
        impl datafusion::logical_expr::ScalarUDFImpl for Shadow {
            fn name(&self) -> &str {
                "date_part"
            }
            fn signature(&self) -> &datafusion::logical_expr::Signature {
                &self.0
            }
            fn return_type(&self, _: &[arrow_type::DataType]) -> Result<arrow_type::DataType> {
                Ok(arrow_type::DataType::Float64)
            }
            fn invoke_with_args(
                &self,
                _: datafusion::logical_expr::ScalarFunctionArgs,
            ) -> Result<datafusion::logical_expr::ColumnarValue> {
                unreachable!()
            }
        }
        let shadow = ScalarUDF::new_from_impl(Shadow(datafusion::logical_expr::Signature::any(
            2,
            datafusion::logical_expr::Volatility::Immutable,
        )));
        let mut buf = Vec::new();
        codec.try_encode_udf(&shadow, &mut buf).unwrap();
        assert!(buf.is_empty());
    }

    use datafusion::arrow::datatypes as arrow_type;
}
