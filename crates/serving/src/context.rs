//! The DataFusion contexts the serving layer plans in. Every context that plans
//! user SQL or a view's partial states has the same functions (PostgreSQL's
//! result types and the view sketches), so that batch runs, speed folds and
//! queries agree on every type.

use std::sync::Arc;

use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{SessionConfig, SessionContext};

/// A context with PostgreSQL's typing rules and the view sketches; `runtime`
/// shares a session's memory pool where given.
pub fn context(config: SessionConfig, runtime: Option<Arc<RuntimeEnv>>) -> SessionContext {
    let ctx = lambdadb_pgcompat::pgtyping::context(config, runtime);
    lambdadb_views::sketches::register(&ctx);
    ctx
}

/// A context for planning inside a table scan: the session's settings and
/// functions, its runtime (so the work counts against the session's memory
/// limit), and a default catalog of its own for whatever the scan registers.
pub fn scan_context(state: &dyn datafusion::catalog::Session) -> SessionContext {
    let mut config = state.config().clone();
    config
        .options_mut()
        .catalog
        .create_default_catalog_and_schema = true;
    context(config, Some(state.runtime_env().clone()))
}
