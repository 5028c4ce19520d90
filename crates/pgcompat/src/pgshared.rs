//! What every session's `pg_catalog` shares, built once per process.
//!
//! `datafusion_pg_catalog::setup_pg_catalog` decodes its static catalog tables
//! (pg_proc, pg_type, pg_operator, ...) from embedded Arrow files every time it
//! runs: several megabytes per session. Here they are decoded once and shared;
//! the functions and table functions its setup registers are taken once from a
//! throwaway context and registered into each session as shared handles.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::TableFunction;
use datafusion::error::Result;
use datafusion::logical_expr::ScalarUDF;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_pg_catalog::pg_catalog::PgCatalogStaticTables;
use datafusion_pg_catalog::pg_catalog::context::{PgCatalogContextProvider, Role};

/// The shared part of `pg_catalog`: decoded tables and setup's functions.
#[derive(Debug)]
pub struct PgShared {
    /// The static catalog tables, decoded once.
    pub static_tables: Arc<PgCatalogStaticTables>,
    udfs: Vec<Arc<ScalarUDF>>,
    udtfs: Vec<(String, Arc<TableFunction>)>,
}

impl PgShared {
    /// Decodes the static tables and learns which functions the crate's setup
    /// adds or replaces (by running it once on an empty context). That run
    /// decodes the tables too and its copy is dropped: once per process,
    /// instead of repeating the crate's list of registrations here.
    pub fn try_new() -> Result<Self> {
        let ctx = SessionContext::new_with_config(
            SessionConfig::new().with_default_catalog_and_schema("lambdadb", "public"),
        );
        let before = ctx.state();
        let udfs_before: HashMap<String, Arc<ScalarUDF>> = before.scalar_functions().clone();
        let udtfs_before: HashMap<String, Arc<TableFunction>> = before.table_functions().clone();
        datafusion_pg_catalog::setup_pg_catalog(&ctx, "lambdadb", Roles { users: vec![] })
            .map_err(|e| *e)?;
        let after = ctx.state();
        let changed = |old: Option<&Arc<ScalarUDF>>, new: &Arc<ScalarUDF>| {
            old.is_none_or(|o| !Arc::ptr_eq(o, new))
        };
        let mut udfs: Vec<Arc<ScalarUDF>> = after
            .scalar_functions()
            .iter()
            .filter(|(name, f)| changed(udfs_before.get(*name), f))
            .map(|(_, f)| f.clone())
            .collect();
        // A function registered under several names appears once per name.
        udfs.sort_by(|a, b| a.name().cmp(b.name()));
        udfs.dedup_by(|a, b| Arc::ptr_eq(a, b));
        let udtfs = after
            .table_functions()
            .iter()
            .filter(|(name, f)| udtfs_before.get(*name).is_none_or(|o| !Arc::ptr_eq(o, f)))
            .map(|(name, f)| (name.clone(), f.clone()))
            .collect();
        Ok(Self {
            static_tables: Arc::new(PgCatalogStaticTables::try_new()?),
            udfs,
            udtfs,
        })
    }

    /// Registers the shared functions and table functions in `ctx`.
    pub fn register_functions(&self, ctx: &SessionContext) {
        for f in &self.udfs {
            ctx.register_udf(f.as_ref().clone());
        }
        for (name, f) in &self.udtfs {
            ctx.register_udtf(name, f.function().clone());
        }
    }
}

/// Roles visible in `pg_roles` / `pg_user`.
#[derive(Debug, Clone)]
pub struct Roles {
    /// The names listed as login roles (a session lists its own user).
    pub users: Vec<String>,
}

#[async_trait]
impl PgCatalogContextProvider for Roles {
    async fn roles(&self) -> Vec<String> {
        self.users.clone()
    }

    async fn role(&self, name: &str) -> Option<Role> {
        self.users.iter().any(|u| u == name).then(|| Role {
            name: name.to_string(),
            is_superuser: false,
            can_login: true,
            can_create_db: false,
            can_create_role: false,
            can_create_user: false,
            can_replication: false,
            grants: vec![],
            inherited_roles: vec![],
        })
    }
}
