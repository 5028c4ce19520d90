//! The DataFusion catalog of a session: schema `public` lists the engine's source
//! tables and materialized views live (a table declared on one connection is seen
//! by all), schema `lambdadb` holds the system tables.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use lambdadb_pgcompat::infoschema::{self, InfoSchema};

use crate::engine::Engine;
use crate::plainview::PlainViewTable;
use crate::system;
use crate::tables::{SourceTable, ViewTable};

/// A context for one client session: the engine's settings and memory limit,
/// PostgreSQL's typing rules, and catalog `lambdadb` (source tables, views,
/// system tables). The wire layer adds `pg_catalog` and the session's settings.
pub fn query_context(engine: &Arc<Engine>) -> SessionContext {
    let ctx = crate::context::context(engine.session_config(), Some(engine.runtime()));
    ctx.register_catalog("lambdadb", Arc::new(LambdaCatalog::new(engine.clone())));
    ctx
}

/// One per session: `pg_catalog` and friends are registered into it per session.
#[derive(Debug)]
pub struct LambdaCatalog {
    public: Arc<PublicSchema>,
    system: Arc<SystemSchema>,
    extra: RwLock<BTreeMap<String, Arc<dyn SchemaProvider>>>,
}

impl LambdaCatalog {
    /// The catalog over `engine`'s tables and system tables, no other schema registered yet.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            public: Arc::new(PublicSchema {
                engine: engine.clone(),
            }),
            system: Arc::new(SystemSchema { engine }),
            extra: RwLock::new(BTreeMap::new()),
        }
    }
}

impl LambdaCatalog {
    /// Every schema but `information_schema`, which is built over them.
    fn others(&self) -> Vec<(String, Arc<dyn SchemaProvider>)> {
        let mut out: Vec<(String, Arc<dyn SchemaProvider>)> = vec![
            ("public".into(), self.public.clone()),
            ("lambdadb".into(), self.system.clone()),
        ];
        let extra = self.extra.read().expect("catalog lock");
        out.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }
}

impl CatalogProvider for LambdaCatalog {
    fn schema_names(&self) -> Vec<String> {
        let mut names = vec!["public".to_string(), "lambdadb".to_string()];
        names.extend(self.extra.read().expect("catalog lock").keys().cloned());
        names.push(infoschema::SCHEMA.to_string());
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        match name {
            "public" => Some(self.public.clone()),
            "lambdadb" => Some(self.system.clone()),
            infoschema::SCHEMA => Some(Arc::new(InfoSchema::new("lambdadb", self.others()))),
            other => self.extra.read().expect("catalog lock").get(other).cloned(),
        }
    }

    fn register_schema(
        &self,
        name: &str,
        schema: Arc<dyn SchemaProvider>,
    ) -> Result<Option<Arc<dyn SchemaProvider>>> {
        if name == "public" || name == "lambdadb" || name == infoschema::SCHEMA {
            return Err(DataFusionError::Plan(format!(
                "schema \"{name}\" already exists"
            )));
        }
        Ok(self
            .extra
            .write()
            .expect("catalog lock")
            .insert(name.to_string(), schema))
    }
}

/// Schema `public`: the engine's source tables, materialized and plain views, read live.
pub struct PublicSchema {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for PublicSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublicSchema")
    }
}

#[async_trait]
impl SchemaProvider for PublicSchema {
    fn table_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .engine
            .sources()
            .iter()
            .map(|s| s.spec.name.clone())
            .collect();
        names.extend(self.engine.views().iter().map(|v| v.name.clone()));
        names.extend(self.engine.plain_view_names());
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        if let Some(s) = self.engine.source(name) {
            return Ok(Some(Arc::new(SourceTable::new(s))));
        }
        if let Some(v) = self.engine.view(name) {
            return Ok(Some(Arc::new(ViewTable::new(v))));
        }
        if let Some(def) = self.engine.plain_view(name) {
            // Planned over a catalog of its own when scanned (see PlainViewTable).
            let catalog = Arc::new(LambdaCatalog::new(self.engine.clone()));
            return Ok(Some(Arc::new(PlainViewTable::new(def, catalog))));
        }
        Ok(None)
    }

    fn register_table(
        &self,
        name: String,
        _table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        Err(DataFusionError::NotImplemented(format!(
            "cannot create \"{name}\" here: declare source tables with CREATE TABLE ... WITH (topic = ...) and views with CREATE MATERIALIZED VIEW"
        )))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.engine.source(name).is_some()
            || self.engine.view(name).is_some()
            || self.engine.plain_view(name).is_some()
    }
}

/// Schema `lambdadb`: the system tables, built from live state when a query plans.
pub struct SystemSchema {
    engine: Arc<Engine>,
}

impl std::fmt::Debug for SystemSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SystemSchema")
    }
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        system::TABLES.iter().map(|s| s.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        system::table(&self.engine, name)
    }

    fn table_exist(&self, name: &str) -> bool {
        system::TABLES.contains(&name)
    }
}
