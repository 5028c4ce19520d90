//! Per-connection protocol handlers: startup, simple query and extended query,
//! all over one [`Session`].

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt, StreamExt, stream};
use lambdadb_pgcompat::pgshared::PgShared;
use lambdadb_pgcompat::vars::SERVER_VERSION;
use lambdadb_serving::Engine;

use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireServerHandlers, PidSecretKeyGenerator,
    RandomPidSecretKeyGenerator, Type,
};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::startup::ParameterStatus;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use tokio::sync::Notify;
use tracing::debug;

use crate::auth::ConfiguredUsers;
use crate::cancel::CancelRegistry;
use crate::encode::{encode_batch, field_infos, pg_type};
use crate::error::{ResultBudget, datafusion_to_pgwire, fatal, query_error, to_pgwire};
use crate::idle::{Activity, BusyGuard};
use crate::logins::PendingLogin;
use crate::panics::{unpanicked, unpanicked_stream};
use crate::params::bind_params;
use crate::session::{LoginSession, Outcome, Prepared, Session};
use crate::slots::{Slot, Slots};

/// Everything one connection needs; built per accepted socket, and cheap until
/// login: the session (DataFusion context, catalogs) is built after it.
pub struct Handler {
    engine: Arc<Engine>,
    pg: Arc<PgShared>,
    session: LoginSession,
    /// This connection's place among those not logged in yet.
    pending: std::sync::Mutex<Option<PendingLogin>>,
    parser: Arc<StatementParser>,
    params: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
    cancels: Arc<CancelRegistry>,
    cancel: Arc<Notify>,
    pid: Arc<std::sync::Mutex<Option<i32>>>,
    /// `max_connections`: a slot is taken at startup (53300 when none is free).
    slots: Arc<Slots>,
    /// The slot this connection holds once it has started up; freed on drop.
    slot: std::sync::Mutex<Option<Slot>>,
    /// Statement activity, for idle_session_timeout.
    activity: Arc<Activity>,
    /// SCRAM-SHA-256 exchange, when password authentication is configured.
    scram: Option<SASLAuthStartupHandler<DefaultServerParameterProvider>>,
}

/// ParameterStatus values sent after authentication.
fn server_params() -> DefaultServerParameterProvider {
    let mut params = DefaultServerParameterProvider::default();
    params.server_version = SERVER_VERSION.to_string();
    params.time_zone = "UTC".into();
    params.is_superuser = false;
    params
}

/// Generates the connection's cancel key and registers it for cancel requests.
struct RegisteringPids {
    inner: RandomPidSecretKeyGenerator,
    cancels: Arc<CancelRegistry>,
    signal: Arc<Notify>,
    pid: Arc<std::sync::Mutex<Option<i32>>>,
}

impl PidSecretKeyGenerator for RegisteringPids {
    fn generate(&self, client: &dyn ClientInfo) -> (i32, pgwire::messages::startup::SecretKey) {
        let (pid, key) = self.inner.generate(client);
        self.cancels.register(pid, key.clone(), self.signal.clone());
        *self.pid.lock().expect("pid lock") = Some(pid);
        (pid, key)
    }
}

impl Drop for Handler {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.lock().ok().and_then(|p| *p) {
            self.cancels.remove(pid);
        }
    }
}

impl Handler {
    /// The handler of one accepted connection; its session is built at login.
    pub fn new(
        engine: Arc<Engine>,
        pg: Arc<PgShared>,
        cancels: Arc<CancelRegistry>,
        slots: Arc<Slots>,
    ) -> Self {
        let session = LoginSession::default();
        let params = server_params();
        let cancel = Arc::new(Notify::new());
        let pid = Arc::new(std::sync::Mutex::new(None));
        let config = engine.config();
        let scram = (config.auth == "scram-sha-256").then(|| {
            SASLAuthStartupHandler::new(Arc::new(server_params()))
                .with_scram(ScramAuth::new(Arc::new(ConfiguredUsers {
                    users: config.users.clone(),
                })))
                .with_pid_secret_key_generator(Arc::new(RegisteringPids {
                    inner: RandomPidSecretKeyGenerator::default(),
                    cancels: cancels.clone(),
                    signal: cancel.clone(),
                    pid: pid.clone(),
                }))
        });
        Self {
            parser: Arc::new(StatementParser {
                session: session.clone(),
            }),
            session,
            engine,
            pg,
            pending: std::sync::Mutex::new(None),
            params,
            pids: RandomPidSecretKeyGenerator::default(),
            cancels,
            cancel,
            pid,
            slots,
            slot: std::sync::Mutex::new(None),
            scram,
            activity: Arc::default(),
        }
    }

    /// The connection's activity, which the watchdog checks for its timeouts.
    pub fn activity(&self) -> Arc<Activity> {
        self.activity.clone()
    }

    /// The connection's session, once its client has logged in.
    pub fn login_session(&self) -> LoginSession {
        self.session.clone()
    }

    /// Counts the connection among those not logged in until it does.
    pub fn set_pending(&self, place: PendingLogin) {
        *self.pending.lock().expect("pending lock") = Some(place);
    }

    fn session(&self) -> PgWireResult<&Arc<Session>> {
        logged_in(&self.session)
    }

    /// Builds the session of `user`, who has just authenticated.
    fn log_in(&self, user: &str) {
        let session = Session::new(self.engine.clone(), &self.pg);
        session.set_user(user);
        let _ = self.session.set(Arc::new(session));
        self.pending.lock().expect("pending lock").take();
        self.activity
            .authenticated
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Factory handed to pgwire; one per connection, so nothing is shared by accident.
pub struct Handlers(pub Arc<Handler>);

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.0.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.0.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.0.clone()
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        self.0.cancels.clone()
    }
}

#[async_trait]
impl StartupHandler for Handler {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if let PgWireFrontendMessage::Startup(ref startup) = message {
            self.activity
                .secure
                .store(client.is_secure(), std::sync::atomic::Ordering::SeqCst);
            save_startup_parameters_to_metadata(client, startup);
            let config = self.engine.config();
            if config.tls_required && !client.is_secure() {
                return Err(fatal(
                    "28000",
                    "this server accepts TLS connections only (tls_required); connect with sslmode=require".into(),
                ));
            }
            let user = client.metadata().get("user").cloned().unwrap_or_default();
            let database = client
                .metadata()
                .get("database")
                .cloned()
                .unwrap_or_else(|| user.clone());
            {
                let mut slot = self.slot.lock().expect("slot lock");
                if slot.is_none() {
                    *slot = Some(self.slots.take().map_err(|why| fatal("53300", why))?);
                }
            }
            if database != config.database {
                return Err(fatal(
                    "3D000",
                    format!(
                        "database \"{database}\" does not exist; connect to database \"{}\"",
                        config.database
                    ),
                ));
            }
            if self.scram.is_none() {
                if !config.trusts(&user) {
                    return Err(fatal(
                        "28000",
                        format!(
                            "role \"{user}\" does not exist; connect as user \"{}\"",
                            config.user
                        ),
                    ));
                }
                protocol_negotiation(client, startup).await?;
                let (pid, key) = self.pids.generate(client);
                client.set_pid_and_secret_key(pid, key.clone());
                self.cancels.register(pid, key, self.cancel.clone());
                *self.pid.lock().expect("pid lock") = Some(pid);
                finish_authentication(client, &self.params).await?;
                self.log_in(&user);
                debug!(user, database, "session started (trust)");
                return Ok(());
            }
        }
        if let Some(scram) = &self.scram {
            scram.on_startup(client, message).await?;
            if matches!(
                client.state(),
                pgwire::api::PgWireConnectionState::ReadyForQuery
            ) {
                let user = client.metadata().get("user").cloned().unwrap_or_default();
                self.log_in(&user);
            }
        }
        Ok(())
    }
}

/// The statement timeout and cancel requests cover every streamed result.
fn guarded(
    stream: datafusion::execution::SendableRecordBatchStream,
    session: &Arc<Session>,
    cancel: &Arc<Notify>,
) -> crate::deadline::Deadline {
    let timeout = session.vars().statement_timeout_ms();
    crate::deadline::with_deadline(stream, timeout, session.clone(), cancel.clone())
}

/// `busy` is held by the result stream until it is fully sent.
fn rows_response(
    outcome: Outcome,
    format: &Format,
    session: &Arc<Session>,
    cancel: &Arc<Notify>,
    busy: BusyGuard,
) -> Response {
    match outcome {
        Outcome::Rows { schema, stream } => {
            let fields: Arc<Vec<FieldInfo>> = Arc::new(field_infos(&schema, format));
            let encode_with = fields.clone();
            let stream = guarded(stream, session, cancel);
            let mut budget = ResultBudget::new(session.vars().max_result_bytes());
            let zone = session.vars().time_zone();
            let rows = stream
                .map(move |batch| {
                    let _busy = &busy;
                    let encoded = batch
                        .map_err(datafusion_to_pgwire)
                        .and_then(|b| encode_batch(&b, &encode_with, zone))
                        .and_then(|rows| {
                            budget.spend(rows.iter().map(|r| r.data.len() as u64).sum())?;
                            Ok(rows)
                        });
                    match encoded {
                        Ok(rows) => stream::iter(rows.into_iter().map(Ok).collect::<Vec<_>>()),
                        Err(e) => stream::iter(vec![Err(e)]),
                    }
                })
                .flatten();
            Response::Query(QueryResponse::new(fields, unpanicked_stream(rows)))
        }
        Outcome::Copy {
            schema,
            stream,
            format,
        } => {
            let stream = guarded(stream, session, cancel).map(move |b| {
                let _busy = &busy;
                b
            });
            let vars = session.vars();
            crate::copy::copy_out(
                schema,
                stream,
                &format,
                vars.time_zone(),
                vars.max_result_bytes(),
            )
        }
        Outcome::Command(tag) if tag.is_empty() => Response::EmptyQuery,
        Outcome::Command(tag) => {
            let tag = match tag.as_str() {
                "CREATE MATERIALIZED VIEW" => Tag::new("SELECT").with_rows(0),
                "REFRESH MATERIALIZED VIEW" => Tag::new("REFRESH MATERIALIZED VIEW"),
                other => Tag::new(other),
            };
            Response::Execution(tag)
        }
        Outcome::Begin => Response::TransactionStart(Tag::new("BEGIN")),
        Outcome::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
        Outcome::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
    }
}

/// ParameterStatus for every reported parameter a statement changed.
async fn send_parameter_changes<C>(client: &mut C, session: &Session) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for (name, value) in session.take_changed() {
        client
            .feed(PgWireBackendMessage::ParameterStatus(ParameterStatus::new(
                name, value,
            )))
            .await?;
    }
    for notice in session.take_notices() {
        let info = pgwire::error::ErrorInfo::new("NOTICE".into(), "00000".into(), notice);
        client
            .feed(PgWireBackendMessage::NoticeResponse(info.into()))
            .await?;
    }
    Ok(())
}

#[async_trait]
impl SimpleQueryHandler for Handler {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let _running = self.activity.begin();
        let session = self.session()?;
        let results = unpanicked(async { Ok(session.execute_all(query).await) }).await?;
        send_parameter_changes(client, session).await?;
        // Only comments or semicolons (pgx's "-- ping", lib/pq's ";"): PostgreSQL
        // answers EmptyQueryResponse, and health checks wait for it.
        if results.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        Ok(results
            .into_iter()
            .map(|r| match r {
                Ok(o) => rows_response(
                    o,
                    &Format::UnifiedText,
                    session,
                    &self.cancel,
                    self.activity.begin(),
                ),
                Err(e) => Response::Error(Box::new(query_error(e))),
            })
            .collect())
    }
}

/// Parses (and plans) statements for the extended protocol.
pub struct StatementParser {
    session: LoginSession,
}

#[async_trait]
impl QueryParser for StatementParser {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let session = logged_in(&self.session)?;
        let prepared = unpanicked(async {
            session.prepare(sql).await.map_err(|e| {
                session.statement_failed();
                to_pgwire(e)
            })
        })
        .await?;
        match prepared {
            Prepared::Empty => Ok(None),
            p => Ok(Some(p)),
        }
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(logged_in(&self.session)?
            .parameter_types(stmt)
            .map_err(to_pgwire)?
            .iter()
            .map(|t| t.as_ref().map(pg_type).unwrap_or(Type::UNKNOWN))
            .collect())
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let schema = logged_in(&self.session)?.result_schema(stmt);
        Ok(field_infos(&schema, format.unwrap_or(&Format::UnifiedText)))
    }
}

#[async_trait]
impl ExtendedQueryHandler for Handler {
    type Statement = Prepared;
    type QueryParser = StatementParser;

    fn query_parser(&self) -> Arc<StatementParser> {
        self.parser.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let busy = self.activity.begin();
        let stmt = &portal.statement.statement;
        let session = self.session()?;
        let expected = session.parameter_types(stmt).map_err(to_pgwire)?;
        let params = bind_params(portal, &expected).map_err(to_pgwire)?;
        let outcome = unpanicked(async {
            session
                .execute_prepared(stmt, params)
                .await
                .map_err(to_pgwire)
        })
        .await?;
        send_parameter_changes(client, session).await?;
        Ok(rows_response(
            outcome,
            &portal.result_column_format,
            session,
            &self.cancel,
            busy,
        ))
    }
}

/// The session, or a protocol violation (08P01) for a message that arrived
/// before login (pgwire does not pass one on, so this is a last check).
fn logged_in(session: &LoginSession) -> PgWireResult<&Arc<Session>> {
    session.get().ok_or_else(|| {
        fatal(
            "08P01",
            "not logged in: send a startup message first".into(),
        )
    })
}
