//! `lambdadb`: the Lambda-architecture serving engine in one binary.
//!
//! - `serve`: consume Kafka into the speed layer, archive into the master dataset,
//!   refresh batch views, and serve everything over the Postgres protocol. With no
//!   brokers configured it starts an embedded broker and a demo clickstream.
//! - `produce`: send JSON lines to a topic (so tests and users need nothing else).
//! - `generate`: print a deterministic demo clickstream as JSON lines.
//! - `ballista-scheduler`, `ballista-executor` (the `ballista` feature): a
//!   Ballista cluster with lambdadb's functions, for `batch_engine`.
//!
//! The top of the crate graph (docs/architecture.md): it wires `serving` and
//! `wire` together and owns start-up order, the embedded broker, the demo
//! generator and shutdown; no crate imports it. Tested end to end by
//! `integration/` (the real binary over TCP).

mod ballista;
mod demo;
mod embedded;
mod lock;
mod mockbroker;
mod produce;
mod serve;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// mimalloc rather than glibc's malloc: encoding a large result allocates per row,
/// and glibc's free lists (unlink_chunk, _int_free, malloc_consolidate) were a
/// fifth of the server's time sending a million rows (bench/profile.py).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "lambdadb",
    version,
    about = "Lambda-architecture serving engine: Kafka in, Postgres out"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve(serve::ServeArgs),
    /// Produce JSON lines (one message per line) to a Kafka topic.
    Produce(produce::ProduceArgs),
    /// Print demo clickstream events as JSON lines.
    Generate(demo::GenerateArgs),
    /// Run librdkafka's mock Kafka cluster (for tests: outages, retention).
    MockBroker(mockbroker::MockBrokerArgs),
    /// Run a Ballista scheduler with lambdadb's functions (for `batch_engine`).
    #[cfg(feature = "ballista")]
    BallistaScheduler(ballista::SchedulerArgs),
    /// Run a Ballista executor with lambdadb's functions and the master
    /// dataset's store (for `batch_engine`).
    #[cfg(feature = "ballista")]
    BallistaExecutor(ballista::ExecutorArgs),
    /// Read a password from standard input and print its SCRAM-SHA-256 verifier
    /// for the `users` configuration (the password itself is never stored).
    Passwd {
        /// PBKDF2 iterations.
        #[arg(long, default_value_t = 4096)]
        iterations: usize,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LAMBDADB_LOG")
                // delta-rs and its kernel log every snapshot load at info.
                .unwrap_or_else(|_| {
                    "info,datafusion=warn,rdkafka=warn,deltalake_core=warn,buoyant_kernel=warn,buoyant_kernel_engine=warn"
                        .into()
                }),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Produce(args) => produce::run(args),
        Command::Generate(args) => demo::generate(args),
        Command::MockBroker(args) => mockbroker::run(args),
        #[cfg(feature = "ballista")]
        Command::BallistaScheduler(args) => ballista::scheduler(args),
        #[cfg(feature = "ballista")]
        Command::BallistaExecutor(args) => ballista::executor(args),
        Command::Passwd { iterations } => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.trim_end_matches(['\n', '\r']);
            anyhow::ensure!(!password.is_empty(), "empty password on standard input");
            println!(
                "{}",
                lambdadb_wire::auth::make_verifier(password, iterations)
            );
            Ok(())
        }
    }
}

/// The default configuration file, used when it exists and `--config` is absent.
pub fn default_config_path() -> Option<PathBuf> {
    let p = PathBuf::from("conf/lambdadb.toml");
    p.exists().then_some(p)
}
