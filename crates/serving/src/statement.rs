//! One snapshot per statement: the cuts of every source a statement scans,
//! shared by all of its scans.

use std::sync::Arc;

/// The snapshots one statement reads, installed as a `SessionConfig` extension
/// for the statement's execution: the first scan of a source cuts its state
/// (rows, manifest, and every view's speed state, under one read of its lock)
/// and every later scan in the same statement reuses that cut. So a self-join,
/// or a view compared with its source, sees one consistent state, as the design
/// promises (one snapshot per statement).
#[derive(Default)]
pub struct StatementSnapshots {
    cuts: std::sync::Mutex<std::collections::HashMap<usize, Arc<crate::source::SourceCut>>>,
}

impl std::fmt::Debug for StatementSnapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatementSnapshots")
    }
}

impl StatementSnapshots {
    /// The statement's cut of `source`, taken now if this is its first scan.
    pub fn cut(&self, source: &Arc<crate::source::SourceState>) -> Arc<crate::source::SourceCut> {
        let key = Arc::as_ptr(source) as usize;
        let mut cuts = self.cuts.lock().expect("snapshots lock");
        cuts.entry(key)
            .or_insert_with(|| Arc::new(source.cut()))
            .clone()
    }

    /// The cut of `source` for the statement running in `state`, or a fresh one
    /// outside a statement (a fold, a test).
    pub fn for_scan(
        state: &dyn datafusion::catalog::Session,
        source: &Arc<crate::source::SourceState>,
    ) -> Arc<crate::source::SourceCut> {
        match state.config().get_extension::<StatementSnapshots>() {
            Some(s) => s.cut(source),
            None => Arc::new(source.cut()),
        }
    }
}

/// `plan` as a DataFrame whose scans share one snapshot per source (see
/// [`StatementSnapshots`]): how every statement of a session is executed.
pub fn one_snapshot(
    ctx: &datafusion::prelude::SessionContext,
    plan: datafusion::logical_expr::LogicalPlan,
) -> datafusion::dataframe::DataFrame {
    let mut state = ctx.state();
    state
        .config_mut()
        .set_extension(Arc::new(StatementSnapshots::default()));
    datafusion::dataframe::DataFrame::new(state, plan)
}
