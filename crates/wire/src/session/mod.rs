//! One client session: a DataFusion context over the engine's catalog, and the
//! routing of each statement to the catalog, to session commands or to DataFusion.

mod copy;
mod prepared;
mod statements;

use std::sync::{Arc, Mutex, OnceLock};

use arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::sqlparser::ast::{Reset, Statement};
use lambdadb_pgcompat::parse::SqlParser;
use lambdadb_pgcompat::pgshared::PgShared;
use lambdadb_pgcompat::setshow::{set_assignment, show_schema};
use lambdadb_pgcompat::vars::SessionVars;
use lambdadb_pgcompat::{QueryError, Result, rewrite};
use lambdadb_serving::{Engine, ddl, insert, resultcache};

pub use copy::{CopyFormat, CopyKind};
pub use prepared::{Outcome, Prepared};
use statements::{external_table, plain_view_statement, verify};

/// The session of a connection, set once its client has logged in.
pub type LoginSession = Arc<OnceLock<Arc<Session>>>;

/// One client's session: its DataFusion context, settings, transaction state and role,
/// through which every statement of the connection runs.
pub struct Session {
    engine: Arc<Engine>,
    ctx: SessionContext,
    vars: SessionVars,
    parser: SqlParser,
    /// Reported parameters changed since the frontend last asked.
    changed: Mutex<Vec<&'static str>>,
    /// NOTICE messages statements raised, sent before their results.
    notices: Mutex<Vec<String>>,
    tx: Mutex<TxState>,
    /// Whether the authenticated user may change the catalog.
    admin: std::sync::atomic::AtomicBool,
}

/// Transaction block state, as PostgreSQL keeps it: reads inside `BEGIN` are
/// accepted, and after an error everything but `COMMIT`/`ROLLBACK` fails (25P02).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    Idle,
    InBlock,
    Failed,
}

impl Session {
    /// A read-only session over `engine`'s catalog, with the configured defaults and `pg_catalog`.
    pub fn new(engine: Arc<Engine>, pg: &PgShared) -> Self {
        let ctx = lambdadb_serving::catalog::query_context(&engine);
        let user = engine.config().user.clone();
        let config = engine.config();
        let defaults = [
            (
                "idle_session_timeout",
                format!("{}ms", config.idle_session_timeout.as_millis()),
            ),
            ("lambdadb.max_result_size", config.max_result_size.clone()),
            (
                "statement_timeout",
                format!("{}ms", config.statement_timeout.as_millis()),
            ),
        ];
        // The configuration was validated at load, so this does not fail.
        let vars = SessionVars::new(&user)
            .with_defaults(&defaults)
            .unwrap_or_else(|_| SessionVars::new(&user));
        if let Err(e) = lambdadb_pgcompat::pg::install(&ctx, pg, &vars, vec![user]) {
            tracing::error!("pg_catalog setup failed: {e}");
        }
        Self {
            engine,
            ctx,
            vars,
            parser: SqlParser::new(),
            changed: Mutex::new(Vec::new()),
            notices: Mutex::new(Vec::new()),
            tx: Mutex::new(TxState::Idle),
            admin: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// For lambdadb's own sessions (the catalog files run at start-up).
    pub fn grant_admin(&self) {
        self.admin.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Records who authenticated. Configured users have their configured role;
    /// without a `users` list the single trusted loopback user is the admin.
    pub fn set_user(&self, user: &str) {
        let config = self.engine.config();
        let admin = if config.users.is_empty() {
            user == config.user
        } else {
            config
                .users
                .iter()
                .any(|u| u.name == user && u.role == "admin")
        };
        self.admin.store(admin, std::sync::atomic::Ordering::SeqCst);
        self.vars.set_login(user);
        // A reader may lower the server's statement_timeout and
        // max_result_size, not raise them.
        self.vars.restrict(!admin);
    }

    /// In a failed transaction block every statement fails with 25P02, even one
    /// that would not parse.
    pub fn in_failed_transaction(&self) -> Option<QueryError> {
        (*self.tx.lock().expect("tx lock") == TxState::Failed).then(|| {
            QueryError::InFailedTransaction(
                "current transaction is aborted, commands ignored until end of transaction block; send ROLLBACK".into(),
            )
        })
    }

    /// Called by the frontend when a statement failed after `execute` returned
    /// (for example while its rows streamed).
    pub fn statement_failed(&self) {
        let mut tx = self.tx.lock().expect("tx lock");
        if *tx == TxState::InBlock {
            *tx = TxState::Failed;
        }
    }

    /// The session's settings (`SET`, `SHOW`, `current_setting`).
    pub fn vars(&self) -> &SessionVars {
        &self.vars
    }

    /// NOTICE messages raised since the last call, oldest first.
    pub fn take_notices(&self) -> Vec<String> {
        std::mem::take(&mut *self.notices.lock().expect("notices lock"))
    }

    /// Reported parameters (name, value) that changed since the last call; the
    /// frontend sends them as ParameterStatus messages.
    pub fn take_changed(&self) -> Vec<(String, String)> {
        let names: Vec<&'static str> = self
            .changed
            .lock()
            .expect("changed lock")
            .drain(..)
            .collect();
        names
            .into_iter()
            .filter_map(|n| self.vars.get(n).ok().map(|v| (n.to_string(), v)))
            .collect()
    }

    fn note_changed(&self, name: Option<&'static str>) {
        if let Some(n) = name {
            if n == "TimeZone" {
                self.apply_time_zone();
            }
            self.changed.lock().expect("changed lock").push(n);
        }
    }

    /// DataFusion reads timestamps without an offset (`'2026-07-01 12:00'` as
    /// timestamptz) and `now()` in the session's zone, as PostgreSQL does.
    fn apply_time_zone(&self) {
        let name = self.vars.get("TimeZone").unwrap_or_else(|_| "UTC".into());
        let state = self.ctx.state_ref();
        let mut state = state.write();
        state.config_mut().options_mut().execution.time_zone = Some(name);
    }

    /// The session's DataFusion context (its runtime holds the session's memory pool).
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// The engine the session queries.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Executes every statement of `sql` in order, stopping at the first error (as
    /// the simple query protocol does).
    pub async fn execute_all(&self, sql: &str) -> Vec<Result<Outcome>> {
        // A cached answer costs no parsing or planning.
        let key = self.cache_key(resultcache::simple_text(sql), &[]);
        if let Some(hit) = self.cached(key.as_ref()) {
            return vec![Ok(hit)];
        }
        let stmts = match self.prepare_all(sql).await {
            Ok(s) => s,
            Err(e) => {
                let e = self.in_failed_transaction().unwrap_or(e);
                self.statement_failed();
                return vec![Err(e)];
            }
        };
        let key = key.filter(|_| stmts.len() == 1);
        let mut out = Vec::with_capacity(stmts.len());
        for p in stmts {
            let r = self.execute_keyed(&p, vec![], key.clone()).await;
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        out
    }

    /// Runs a prepared statement of the extended protocol: from the cache when it
    /// may answer, else planned afresh (current snapshot) and executed.
    pub async fn execute_prepared(
        &self,
        p: &Prepared,
        params: Vec<ScalarValue>,
    ) -> Result<Outcome> {
        let key = match p {
            Prepared::Query { sql, .. } => self.cache_key(sql.clone(), &params),
            _ => None,
        };
        if let Some(hit) = self.cached(key.as_ref()) {
            return Ok(hit);
        }
        let fresh = self.replan(p).await?;
        self.execute_keyed(&fresh, params, key).await
    }

    fn cached(&self, key: Option<&resultcache::CacheKey>) -> Option<Outcome> {
        let stream = resultcache::lookup(&self.engine, &self.vars, key?)?;
        Some(Outcome::Rows {
            schema: stream.schema(),
            stream,
        })
    }

    fn cache_key(
        &self,
        statement: String,
        params: &[ScalarValue],
    ) -> Option<resultcache::CacheKey> {
        if self.in_failed_transaction().is_some() {
            return None;
        }
        resultcache::key(&self.engine, &self.vars, statement, params)
    }

    /// Parses and plans every statement of `sql`.
    pub async fn prepare_all(&self, sql: &str) -> Result<Vec<Prepared>> {
        if let Some(refresh) = ddl::parse_refresh(sql) {
            return Ok(vec![Prepared::Catalog(refresh?)]);
        }
        if let Some(alter) = lambdadb_serving::alter::parse_alter_table(sql) {
            return Ok(vec![Prepared::Catalog(alter?)]);
        }
        if let Some(e) = external_table(sql, self.admin.load(std::sync::atomic::Ordering::SeqCst)) {
            return Err(e);
        }
        // Catalog statements are recognised on the text as written; everything
        // else goes through the compatibility rewrites clients' catalog queries need.
        let pairs = self.parser.parse(sql)?.into_pairs();
        let mut out = Vec::with_capacity(pairs.len());
        for (original, mut stmt) in pairs {
            let original = original.as_ref();
            if let Some(c) = original.and_then(ddl::classify) {
                out.push(Prepared::Catalog(c?));
                continue;
            }
            if let Some(p) = original.and_then(plain_view_statement) {
                out.push(p);
                continue;
            }
            if let Some(insert) = original.and_then(|s| insert::statement(&self.engine, s)) {
                out.push(Prepared::Insert(insert));
                continue;
            }
            rewrite::apply_all(&mut stmt, &self.ctx);
            out.push(self.classify(stmt).await?);
        }
        Ok(out)
    }

    /// Parses and plans exactly one statement (extended query protocol).
    pub async fn prepare(&self, sql: &str) -> Result<Prepared> {
        let mut all = self.prepare_all(sql).await?;
        match all.len() {
            0 => Ok(Prepared::Empty),
            1 => Ok(all.remove(0)),
            _ => Err(QueryError::Syntax(
                "cannot insert multiple commands into a prepared statement".into(),
            )),
        }
    }

    async fn classify(&self, stmt: Statement) -> Result<Prepared> {
        if let Some(copy) = copy::parse_copy(&stmt) {
            let (query, format) = copy?;
            let inner = Box::pin(self.prepare(&query)).await?;
            return Ok(Prepared::Copy {
                query: Box::new(inner),
                format,
            });
        }
        match &stmt {
            Statement::StartTransaction { .. } => return Ok(Prepared::Begin),
            Statement::Commit { .. } => return Ok(Prepared::Commit),
            // Savepoints: reads have nothing to undo, but drivers (SQLAlchemy,
            // psycopg's nested transactions) use them, and rolling back to one
            // leaves the aborted state as in PostgreSQL.
            Statement::Rollback {
                savepoint: Some(_), ..
            } => return Ok(Prepared::RollbackToSavepoint),
            Statement::Rollback { .. } => return Ok(Prepared::Rollback),
            Statement::Savepoint { .. } => return Ok(Prepared::Command("SAVEPOINT".into())),
            Statement::ReleaseSavepoint { .. } => return Ok(Prepared::Command("RELEASE".into())),
            Statement::Set(set) => return Ok(Prepared::Set(set_assignment(set))),
            Statement::Reset(r) => {
                return Ok(Prepared::Reset(match &r.reset {
                    Reset::ALL => None,
                    Reset::ConfigurationParameter(n) => Some(n.to_string()),
                }));
            }
            Statement::Discard { .. } => return Ok(Prepared::Reset(None)),
            Statement::ShowVariable { variable } => {
                let name = variable
                    .iter()
                    .map(|i| i.value.clone())
                    .collect::<Vec<_>>()
                    .join(" ");
                return Ok(Prepared::Show(name));
            }
            _ => {}
        }
        let sql = stmt.to_string();
        let plan = self
            .ctx
            .state()
            .statement_to_plan(DFStatement::Statement(Box::new(stmt)))
            .await?;
        verify(&plan, self.admin.load(std::sync::atomic::Ordering::SeqCst))?;
        Ok(Prepared::Query { sql, plan })
    }

    async fn run_insert(
        &self,
        insert: &insert::InsertStatement,
        params: Vec<ScalarValue>,
    ) -> Result<Outcome> {
        self.require_admin(&format!("INSERT INTO {}", insert.table))?;
        if !matches!(*self.tx.lock().expect("tx lock"), TxState::Idle) {
            // Produced rows are in Kafka at once: a ROLLBACK could not undo them.
            return Err(QueryError::ActiveTransaction(format!(
                "INSERT INTO {} cannot run inside a transaction block: its rows go to Kafka at once and a ROLLBACK could not undo them; run it outside BEGIN ... COMMIT (autocommit)",
                insert.table
            )));
        }
        let n = insert::run(&self.engine, &self.ctx, insert, params).await?;
        Ok(Outcome::Command(format!("INSERT 0 {n}")))
    }

    fn require_admin(&self, what: &str) -> Result<()> {
        if self.admin.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(());
        }
        Err(QueryError::InsufficientPrivilege(format!(
            "permission denied: {what} needs the admin role; this user is read-only"
        )))
    }

    /// Result columns of a prepared statement (empty for commands).
    pub fn result_schema(&self, p: &Prepared) -> SchemaRef {
        match p {
            Prepared::Query { plan, .. } => Arc::new(plan.schema().as_arrow().clone()),
            Prepared::Show(name) => show_schema(name),
            _ => Arc::new(Schema::empty()),
        }
    }

    /// Parameter types of a prepared statement, `$1` first.
    pub fn parameter_types(&self, p: &Prepared) -> Result<Vec<Option<DataType>>> {
        let Prepared::Query { plan, .. } = p else {
            return Ok(vec![]);
        };
        let types = plan.get_parameter_types()?;
        let n = types
            .keys()
            .filter_map(|k| k.trim_start_matches('$').parse::<usize>().ok())
            .max()
            .unwrap_or(0);
        Ok((1..=n)
            .map(|i| types.get(&format!("${i}")).cloned().flatten())
            .collect())
    }

    /// Executes a prepared statement as it was planned, without the result cache.
    pub async fn execute(&self, p: &Prepared, params: Vec<ScalarValue>) -> Result<Outcome> {
        self.execute_keyed(p, params, None).await
    }

    /// `execute`, keeping a query's result in the cache under `key`.
    async fn execute_keyed(
        &self,
        p: &Prepared,
        params: Vec<ScalarValue>,
        key: Option<resultcache::CacheKey>,
    ) -> Result<Outcome> {
        let state = *self.tx.lock().expect("tx lock");
        let next = match (state, p) {
            (TxState::Failed, Prepared::RollbackToSavepoint) => {
                *self.tx.lock().expect("tx lock") = TxState::InBlock;
                return Ok(Outcome::Command("ROLLBACK".into()));
            }
            (TxState::Failed, Prepared::Commit | Prepared::Rollback) => {
                *self.tx.lock().expect("tx lock") = TxState::Idle;
                // COMMIT of a failed transaction rolls it back, and says so.
                return Ok(Outcome::Rollback);
            }
            (TxState::Failed, _) => {
                return Err(QueryError::InFailedTransaction(
                    "current transaction is aborted, commands ignored until end of transaction block; send ROLLBACK".into(),
                ));
            }
            (_, Prepared::Begin) => TxState::InBlock,
            (_, Prepared::Commit | Prepared::Rollback) => TxState::Idle,
            (s, _) => s,
        };
        let result = match (p, key) {
            (Prepared::Query { plan, .. }, Some(key)) => {
                self.run_query(plan, params, Some(key)).await
            }
            _ => self.execute_inner(p, params).await,
        };
        *self.tx.lock().expect("tx lock") = match (&result, next) {
            (Err(_), TxState::InBlock) => TxState::Failed,
            (_, n) => n,
        };
        result
    }

    async fn execute_inner(&self, p: &Prepared, params: Vec<ScalarValue>) -> Result<Outcome> {
        match p {
            Prepared::Catalog(c) => {
                if !self.admin.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(QueryError::InsufficientPrivilege(format!(
                        "permission denied: {} needs the admin role; this user is read-only (set role = \"admin\" for the user in the configuration)",
                        c.describe()
                    )));
                }
                let done = self.engine.execute(c.clone()).await?;
                self.notices
                    .lock()
                    .expect("notices lock")
                    .extend(done.notices);
                Ok(Outcome::Command(done.tag))
            }
            Prepared::Command(tag) => Ok(Outcome::Command(tag.clone())),
            Prepared::Set(assignment) => {
                if let Some((name, value)) = assignment {
                    let changed = self.vars.set(name, value)?;
                    self.note_changed(changed);
                }
                Ok(Outcome::Command("SET".into()))
            }
            Prepared::Reset(None) => {
                self.vars.reset_all();
                for n in lambdadb_pgcompat::vars::REPORTED {
                    self.note_changed(Some(n));
                }
                Ok(Outcome::Command("RESET".into()))
            }
            Prepared::Reset(Some(name)) => {
                let changed = self.vars.reset(name)?;
                self.note_changed(changed);
                Ok(Outcome::Command("RESET".into()))
            }
            Prepared::Begin => Ok(Outcome::Begin),
            Prepared::Commit => Ok(Outcome::Commit),
            Prepared::Rollback => Ok(Outcome::Rollback),
            Prepared::RollbackToSavepoint => Ok(Outcome::Command("ROLLBACK".into())),
            Prepared::Empty => Ok(Outcome::Command(String::new())),
            Prepared::Insert(insert) => self.run_insert(insert, params).await,
            Prepared::CreatePlainView {
                name,
                query,
                or_replace,
            } => {
                self.require_admin("CREATE VIEW")?;
                self.engine
                    .create_plain_view(&self.ctx, name, query, *or_replace)
                    .await?;
                Ok(Outcome::Command("CREATE VIEW".into()))
            }
            Prepared::DropPlainViews { names, if_exists } => {
                self.require_admin("DROP VIEW")?;
                self.engine.drop_plain_views(names, *if_exists)?;
                Ok(Outcome::Command("DROP VIEW".into()))
            }
            Prepared::Show(name) => statements::show(&self.vars, name),
            Prepared::Copy { query, format } => {
                let fresh = Box::pin(self.replan(query)).await?;
                match Box::pin(self.execute_inner(&fresh, params)).await? {
                    Outcome::Rows { schema, stream } => Ok(Outcome::Copy {
                        schema,
                        stream,
                        format: format.clone(),
                    }),
                    _ => Err(QueryError::FeatureNotSupported(
                        "COPY needs a query that returns rows".into(),
                    )),
                }
            }
            Prepared::Query { plan, .. } => self.run_query(plan, params, None).await,
        }
    }

    async fn run_query(
        &self,
        plan: &LogicalPlan,
        params: Vec<ScalarValue>,
        key: Option<resultcache::CacheKey>,
    ) -> Result<Outcome> {
        // Versions before the scans take their snapshots (see resultcache).
        let cache = key.and_then(|k| {
            let deps = resultcache::dependencies(&self.engine, plan)?;
            Some((k, resultcache::versions(&self.engine, &deps)))
        });
        let mut plan = plan.clone();
        if !params.is_empty() {
            plan = plan.with_param_values(ParamValues::from(params))?;
        }
        // One snapshot per statement: every scan of a source shares the first
        // one's cut (see lambdadb_serving::snapshot::StatementSnapshots).
        // (`verify` refused DDL and statements: this is a query.)
        let df = lambdadb_serving::statement::one_snapshot(&self.ctx, plan);
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let mut stream = df.execute_stream().await?;
        if let Some((key, versions)) = cache {
            stream = Box::pin(resultcache::Collecting::new(
                stream,
                self.engine.cache().clone(),
                key,
                versions,
            ));
        }
        Ok(Outcome::Rows { schema, stream })
    }

    /// Re-plans a query from its text (so snapshots and system tables are current).
    pub async fn replan(&self, p: &Prepared) -> Result<Prepared> {
        match p {
            Prepared::Query { sql, .. } => self.prepare(sql).await,
            other => Ok(other.clone()),
        }
    }
}
