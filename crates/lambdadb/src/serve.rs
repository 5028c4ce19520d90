//! `lambdadb serve`: wire the layers together and run until interrupted.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use lambdadb_common::Config;
use lambdadb_pgcompat::pgshared::PgShared;
use lambdadb_serving::Engine;
use lambdadb_wire::session::Session;
use tokio::net::TcpListener;
use tracing::{error, info, warn};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Configuration file (default: conf/lambdadb.toml when it exists).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Postgres listen address (overrides `listen`).
    #[arg(long)]
    pub listen: Option<String>,
    /// Data directory (overrides `data_dir`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Kafka bootstrap servers (overrides `brokers`); empty starts the embedded demo broker.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Directory of catalog `.sql` files (overrides `sql_dir`).
    #[arg(long)]
    pub sql_dir: Option<PathBuf>,
    /// `all`, `writer` or `reader` (overrides `role`; see docs/scale-out.md).
    #[arg(long)]
    pub role: Option<String>,
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let path = args.config.clone().or_else(crate::default_config_path);
    let mut config = Config::load(path.as_deref())?;
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(b) = args.brokers {
        config.brokers = b;
    }
    if let Some(s) = args.sql_dir {
        config.sql_dir = s;
    }
    if let Some(r) = args.role {
        config.role = r;
        config.validate_role()?;
    }
    let addr: SocketAddr = config
        .listen
        .parse()
        .with_context(|| format!("listen address '{}' is not IP:PORT", config.listen))?;
    if !addr.ip().is_loopback() && config.auth == "trust" {
        bail!(
            "refusing to listen on {addr} with auth = \"trust\": anyone who can reach it could connect. \
             Configure auth = \"scram-sha-256\" with [[users]] (see `lambdadb passwd`), or listen on 127.0.0.1"
        );
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    // Kafka's TLS and SASL settings (a password file that cannot be read) fail
    // the start, not the first consumer.
    config.kafka_properties()?;
    // Before anything reads or clears the directory (demo mode starts afresh).
    let _one_server = crate::lock::DataDirLock::acquire(&config.data_dir, &config.listen)?;

    raise_file_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lambdadb")
        .build()?;
    runtime.block_on(serve(config, addr))
}

async fn serve(mut config: Config, addr: SocketAddr) -> anyhow::Result<()> {
    let embedded = config.brokers.trim().is_empty();
    if embedded {
        // The embedded broker keeps its log in memory and starts at offset 0 on
        // every run, so an archive from an earlier run cannot be continued (its
        // offsets would seem to go backwards). Demo mode therefore starts afresh in
        // a subdirectory of its own, leaving real data directories alone.
        config.data_dir = config.data_dir.join("embedded");
        if config.data_dir.exists() {
            info!(dir = %config.data_dir.display(), "embedded mode: clearing the previous demo run's data");
            std::fs::remove_dir_all(&config.data_dir)
                .with_context(|| format!("cannot clear {}", config.data_dir.display()))?;
        }
        std::fs::create_dir_all(&config.data_dir)?;
    }
    let brokers = if embedded {
        let b = crate::embedded::start("events", config.demo_partitions)?;
        info!(brokers = %b, "started the embedded Kafka broker (in memory; produce to it with `lambdadb produce --brokers {b} --topic events`)");
        b
    } else {
        config.brokers.clone()
    };
    let batch_engine = crate::ballista::engine(&config)?;
    let engine = Engine::with_batch_engine(config.clone(), brokers.clone(), batch_engine)?;
    // On a shared store, learn who writes before any table opens: a writer
    // that holds (or resumes) the lease takes each table over as it opens it.
    engine.lease_round().await;

    // The pg_catalog tables every session shares, decoded once.
    let pg = Arc::new(PgShared::try_new().context("cannot set up pg_catalog")?);
    let session = Session::new(engine.clone(), &pg);
    session.grant_admin();
    for (file, text) in Engine::catalog_files(&config.sql_dir)? {
        for r in session.execute_all(&text).await {
            if let Err(e) = r {
                bail!("{}: {e}", file.display());
            }
        }
        info!(file = %file.display(), "catalog file applied");
    }
    // Then what admins declared over the wire (see lambdadb_serving::catalog_log),
    // in rounds: a declaration that reads an object restored later in the list
    // (a view replaced after the objects it now reads) succeeds in a later round.
    let mut pending = engine.catalog_log().objects().await?;
    loop {
        let before = pending.len();
        let mut failed = Vec::new();
        for obj in std::mem::take(&mut pending) {
            let errors: Vec<String> = session
                .execute_all(&obj.sql)
                .await
                .into_iter()
                .filter_map(|r| r.err().map(|e| e.to_string()))
                .collect();
            if errors.is_empty() {
                info!(object = %obj.name, "declared over the wire earlier; restored");
            } else {
                failed.push((obj, errors.join("; ")));
            }
        }
        if failed.is_empty() {
            break;
        }
        if failed.len() == before {
            for (obj, e) in &failed {
                error!(object = %obj.name, "a declaration made over the wire cannot be restored and is skipped (it stays in catalog.json): {e}");
            }
            break;
        }
        pending = failed.into_iter().map(|(o, _)| o).collect();
    }
    engine.catalog_log().start_recording();
    engine.spawn_background();
    engine.spawn_replication();
    if config.shared_store() {
        let replay = Session::new(engine.clone(), &pg);
        replay.grant_admin();
        tokio::spawn(follow_catalog(
            engine.clone(),
            replay,
            config.follow_interval,
        ));
    }

    if embedded && config.demo_rate > 0 {
        crate::demo::spawn_live(brokers.clone(), "events".into(), config.demo_rate)?;
        info!(
            rate = config.demo_rate,
            "demo generator producing to topic events"
        );
    }

    let tls = if config.tls_cert.is_empty() {
        None
    } else {
        let acceptor = lambdadb_wire::tls::acceptor(
            std::path::Path::new(&config.tls_cert),
            std::path::Path::new(&config.tls_key),
        )
        .map_err(|e| {
            anyhow::anyhow!("{e}; the server does not start without the TLS it was configured with")
        })?;
        info!(cert = %config.tls_cert, "TLS enabled (1.2 and 1.3)");
        Some(acceptor)
    };
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    println!(
        "lambdadb is ready: psql -h {} -p {} -U {} {}   (brokers: {brokers})",
        local.ip(),
        local.port(),
        config.user,
        config.database
    );

    let server = tokio::spawn(lambdadb_wire::serve(listener, engine.clone(), pg, tls));
    shutdown_signal().await;
    info!("shutting down: stopping consumers and archiving what they consumed");
    server.abort();
    let stopper = engine.clone();
    tokio::task::spawn_blocking(move || stopper.stop()).await?;
    for s in engine.sources() {
        if let Err(e) = s.archive().await {
            error!(table = %s.spec.name, "final archive failed (the events will be consumed again from Kafka): {e}");
        }
    }
    // Another writer may take over at once instead of waiting for the lease to lapse.
    if let Some(lease) = engine.gate().lease() {
        lease.release().await;
    }
    Ok(())
}

/// On a shared store: runs what other replicas declared over the wire (and
/// drops what they dropped), so every replica serves the same objects.
async fn follow_catalog(engine: Arc<Engine>, session: Session, every: std::time::Duration) {
    use lambdadb_serving::catalog_log::CatalogLog;
    let every = every.max(std::time::Duration::from_millis(100));
    loop {
        tokio::time::sleep(every).await;
        let changes = match engine.catalog_log().remote_changes().await {
            Ok(Some(c)) => c,
            Ok(None) => continue,
            Err(e) => {
                warn!("reading the shared catalog failed, retried: {e}");
                continue;
            }
        };
        let mut statements = Vec::new();
        for name in &changes.drop {
            statements.extend(drop_statement(&engine, name));
        }
        for d in &changes.apply {
            // A new definition of an object this replica has: replace it.
            if d.setting.is_none() {
                statements.extend(drop_statement(&engine, &d.name));
            }
            statements.push(d.sql.clone());
        }
        for sql in statements {
            let results = CatalogLog::replaying(session.execute_all(&sql)).await;
            match results.into_iter().find_map(|r| r.err()) {
                None => info!(statement = %sql, "applied a declaration made on another replica"),
                Some(e) => {
                    error!(statement = %sql, "a declaration made on another replica cannot be applied here: {e}")
                }
            }
        }
    }
}

/// The DROP for object `name`, if this replica has one by that name.
fn drop_statement(engine: &Engine, name: &str) -> Option<String> {
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    if engine.view(name).is_some() {
        Some(format!("DROP MATERIALIZED VIEW IF EXISTS {quoted}"))
    } else if engine.plain_view(name).is_some() {
        Some(format!("DROP VIEW IF EXISTS {quoted}"))
    } else if engine.source(name).is_some() {
        Some(format!("DROP TABLE IF EXISTS {quoted}"))
    } else {
        None
    }
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

/// Every connection holds two descriptors (the socket and the watchdog's
/// handle on it), and archives and views open files: the usual soft limit of
/// 1,024 would refuse connections long before `max_connections` and
/// `max_unauthenticated_connections` do. Raised to the hard limit, as servers do.
fn raise_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            let soft = limit.rlim_cur;
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                warn!(
                    soft,
                    "cannot raise the open-file limit; connections may be refused early"
                );
            }
        }
    }
}
