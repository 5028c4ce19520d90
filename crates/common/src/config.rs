//! Typed configuration, layered: built-in defaults, then the TOML file, then
//! `LAMBDADB_<KEY>` environment variables, then command-line flags (applied by the
//! binary). Unknown keys are refused so that a typo never silently falls back to a
//! default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::kafka::Secret;
use crate::units::duration_str;
pub use crate::units::{parse_duration, parse_size};

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        /// The file that was being read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A key, value or combination of settings is refused; the text says which and why.
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

/// All settings of `lambdadb serve`. Keys are flat so that each has exactly one
/// environment variable: `data_dir` is `LAMBDADB_DATA_DIR`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Postgres endpoint. Loopback by default: there is no authentication yet.
    pub listen: String,
    /// Connections beyond this many are refused with 53300.
    pub max_connections: usize,
    /// Connections that have not logged in yet, at most: one more closes the
    /// oldest of them (see `authentication_timeout`). Before login a connection
    /// costs a socket, a buffer and a timer, so a flood stays cheap, and real
    /// clients, which log in within milliseconds, are not locked out by it.
    pub max_unauthenticated_connections: usize,
    /// `trust` (no password; loopback only) or `scram-sha-256` (users below).
    pub auth: String,
    /// Users allowed to connect; with `trust`, only `user` (or these names).
    /// Passwords are SCRAM-SHA-256 verifiers (`lambdadb passwd` prints one),
    /// never plaintext. This key is file-only (no environment variable).
    pub users: Vec<UserConfig>,
    /// PEM certificate chain and private key: TLS is offered when both are set,
    /// and the server does not start if they cannot be loaded.
    pub tls_cert: String,
    /// Path of the PEM private key matching `tls_cert`; set both or neither.
    pub tls_key: String,
    /// Refuse connections that did not negotiate TLS (28000), as PostgreSQL's
    /// `hostssl` lines do, so that a client's `sslmode=prefer` cannot be
    /// downgraded to plaintext by whoever sits on the network. Needs `tls_cert`.
    pub tls_required: bool,
    /// The default user name (trust authentication without a `users` list).
    pub user: String,
    /// The only database name accepted at start-up.
    pub database: String,
    /// Master dataset, batch views and catalog live here.
    pub data_dir: PathBuf,
    /// Where the master dataset's Delta tables live: empty keeps them under
    /// `data_dir/sources`; `s3://bucket/prefix` puts each source's table at
    /// `prefix/<table>` in that bucket (credentials from the standard AWS
    /// environment variables: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    /// AWS_SESSION_TOKEN, or the instance's role). View versions and the
    /// catalog stay in `data_dir`.
    pub master_url: String,
    /// An S3-compatible endpoint (MinIO, moto, Ceph): `http://host:port`. Empty: AWS.
    pub s3_endpoint: String,
    /// The bucket's region; empty: AWS_REGION, else us-east-1.
    pub s3_region: String,
    /// Allow a plain-HTTP `s3_endpoint` (test stores only).
    pub s3_allow_http: bool,
    /// What this process does with the shared master dataset (docs/scale-out.md):
    /// `all` (the default) and `writer` serve queries and, while they hold the
    /// writer lease, archive, compact, apply retention and publish batch view
    /// versions; `reader` serves queries and follows what the writer
    /// publishes. Every role consumes Kafka into its own speed layer. With a
    /// local master dataset (no `master_url`) `all` is the only writer there
    /// can be (the `data_dir` lock) and needs no lease; `writer` and `reader`
    /// need `master_url`.
    pub role: String,
    /// How long the writer lease lasts unrenewed: another writer takes over
    /// this long after the holder last renewed it (it renews every third of
    /// it, and stops writing half of it after its last renewal).
    #[serde(with = "duration_str")]
    pub lease_expiry: Duration,
    /// How often a process that does not hold the writer lease looks for new
    /// commits of the master dataset, view versions and catalog changes on
    /// the shared store.
    #[serde(with = "duration_str")]
    pub follow_interval: Duration,
    /// Kafka bootstrap servers; empty starts the embedded demo broker.
    pub brokers: String,
    /// librdkafka properties for every Kafka client (TLS and SASL:
    /// `security.protocol`, `sasl.mechanism`, `sasl.username`,
    /// `ssl.ca.location`, ...). File-only (a `[kafka]` table). Secrets are
    /// refused here: the SASL password comes from `kafka_sasl_password_file` or
    /// the LAMBDADB_KAFKA_SASL_PASSWORD environment variable.
    pub kafka: BTreeMap<String, String>,
    /// A file whose first line is the SASL password.
    pub kafka_sasl_password_file: PathBuf,
    /// The SASL password from LAMBDADB_KAFKA_SASL_PASSWORD; never written out
    /// or shown.
    #[serde(skip)]
    pub kafka_sasl_password: Secret,
    /// Directory of `.sql` files run in name order at start-up.
    pub sql_dir: PathBuf,
    /// The only directory `COPY t FROM '/path' (FORMAT parquet)` may read (an
    /// admin's import of historical files); a path that resolves outside it,
    /// symbolic links followed, is refused with 42501. Empty: file imports are off.
    pub import_dir: PathBuf,
    /// Largest number of messages decoded into one micro-batch.
    pub micro_batch_rows: usize,
    /// Longest time a consumed message waits before its micro-batch is published.
    #[serde(with = "duration_str")]
    pub micro_batch_wait: Duration,
    /// How often consumed events are archived into the master dataset.
    #[serde(with = "duration_str")]
    pub archive_interval: Duration,
    /// How often every materialized view is recomputed by the batch layer; 0 disables.
    #[serde(with = "duration_str")]
    pub refresh_interval: Duration,
    /// A refresh (scheduled or `REFRESH MATERIALIZED VIEW v`) merges the new
    /// files into the view's last version, at the cost of the new data; once the
    /// last full recompute from the whole master dataset is older than this, the
    /// next refresh is a full one (how a fix of a view's bug reaches history
    /// without a `REFRESH ... FULL`). 0: every refresh is full.
    #[serde(with = "duration_str")]
    pub full_refresh_interval: Duration,
    /// Where full recomputes of views execute: `local` (this process) or
    /// `ballista://HOST:PORT`, a Ballista scheduler whose executors are
    /// `lambdadb ballista-executor` processes (they have lambdadb's functions
    /// and read the master dataset from the same store). Needs a binary built
    /// with the `ballista` feature. Incremental refreshes stay local.
    pub batch_engine: String,
    /// How often each source's small master-dataset files (one per partition
    /// per archive run) are merged into large ones; 0 disables compaction.
    #[serde(with = "duration_str")]
    pub compact_interval: Duration,
    /// The size compacted files aim at; files of half of it or more are left alone.
    pub compact_target_size: String,
    /// Consecutive small files a partition needs before they are merged.
    pub compact_min_files: usize,
    /// How long files replaced by compaction stay on the store for queries
    /// (and outside readers) still reading them; longer than statement_timeout.
    #[serde(with = "duration_str")]
    pub vacuum_grace: Duration,
    /// Batch versions kept per view for `ALTER MATERIALIZED VIEW v ROLLBACK TO
    /// VERSION n` (at least 2; the served version is always kept).
    pub view_versions_keep: usize,
    /// Versions older than this are removed even within `view_versions_keep`
    /// (the served one and the newest two stay); 0: no age limit.
    #[serde(with = "duration_str")]
    pub view_versions_max_age: Duration,
    /// How often each view's speed state folds in the events that arrived since
    /// the last fold. Queries merge the events not folded yet themselves, so this
    /// bounds their work, never their freshness.
    #[serde(with = "duration_str")]
    pub speed_fold_interval: Duration,
    /// Bytes of query results the result cache keeps; "0" disables it.
    pub result_cache_size: String,
    /// Memory one query may use (DataFusion's memory pool, per session); a query
    /// that needs more fails with 53200 and the server goes on. Sizes: 512MB, 2GB.
    pub query_memory_limit: String,
    /// Memory every session's queries, the batch refreshes and the speed folds
    /// may use together; work beyond it fails with 53200. "0": three quarters
    /// of the machine's memory.
    pub memory_limit: String,
    /// Largest result one statement may send (encoded bytes); beyond it the
    /// statement fails with 54000. The session default of
    /// `lambdadb.max_result_size`, and the most a reader may set it to (COPY TO
    /// STDOUT counts too); 0 is unlimited.
    pub max_result_size: String,
    /// Sessions idle (no statement running, waiting for the client) longer than
    /// this are closed with 57P05. The session default of `idle_session_timeout`;
    /// 0 disables, as in PostgreSQL.
    #[serde(with = "duration_str")]
    pub idle_session_timeout: Duration,
    /// Longest a statement may run before it is cancelled (57014): the session
    /// default of `statement_timeout`, and the most a reader may set it to.
    /// 0: no limit (a reader may then set any value).
    #[serde(with = "duration_str")]
    pub statement_timeout: Duration,
    /// A connection that has not finished logging in within this time is
    /// closed (PostgreSQL's authentication_timeout).
    #[serde(with = "duration_str")]
    pub authentication_timeout: Duration,
    /// Rejected messages kept for `lambdadb.rejected_messages` (oldest dropped first).
    pub rejected_keep: usize,
    /// Memory the speed layer's rows (every source's consumed events not
    /// archived yet, or kept for a view's fold) may take. Above it consumption
    /// pauses until archiving frees memory (back-pressure, shown in
    /// `lambdadb.sources`); nothing is dropped.
    pub speed_memory_limit: String,
    /// When Kafka's retention deleted offsets before they were consumed:
    /// `stop` the partition (the default: the operator decides), or `skip` to
    /// the oldest offset the topic holds and count the gap as lost
    /// (`lambdadb.sources.lost_messages`).
    pub retention_gap: String,
    /// Embedded mode only: demo events produced per second (0 disables the generator).
    pub demo_rate: u32,
    /// Embedded mode only: partitions of the demo topic.
    pub demo_partitions: i32,
}

/// One user of `users`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// The user name a client logs in with.
    pub name: String,
    /// `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64).
    #[serde(default)]
    pub password: String,
    /// `reader` (default: read-only) or `admin` (may declare tables and views,
    /// refresh views).
    #[serde(default = "default_role")]
    pub role: String,
}

fn default_role() -> String {
    "reader".into()
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:5433".into(),
            max_connections: 100,
            max_unauthenticated_connections: 256,
            auth: "trust".into(),
            users: Vec::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            tls_required: false,
            user: "lambdadb".into(),
            database: "lambdadb".into(),
            data_dir: PathBuf::from("data"),
            brokers: String::new(),
            master_url: String::new(),
            s3_endpoint: String::new(),
            s3_region: String::new(),
            s3_allow_http: false,
            role: "all".into(),
            lease_expiry: Duration::from_secs(10),
            follow_interval: Duration::from_secs(1),
            kafka: BTreeMap::new(),
            kafka_sasl_password_file: PathBuf::new(),
            kafka_sasl_password: Secret::default(),
            sql_dir: PathBuf::from("sql"),
            import_dir: PathBuf::new(),
            micro_batch_rows: 20_000,
            micro_batch_wait: Duration::from_millis(5),
            archive_interval: Duration::from_secs(10),
            refresh_interval: Duration::from_secs(60),
            full_refresh_interval: Duration::from_secs(24 * 3600),
            batch_engine: "local".into(),
            view_versions_keep: 10,
            compact_interval: Duration::from_secs(300),
            compact_target_size: "128MB".into(),
            compact_min_files: 10,
            vacuum_grace: Duration::from_secs(600),
            view_versions_max_age: Duration::from_secs(7 * 24 * 3600),
            speed_fold_interval: Duration::from_millis(200),
            result_cache_size: "256MB".into(),
            rejected_keep: 10_000,
            speed_memory_limit: "2GB".into(),
            retention_gap: "stop".into(),
            query_memory_limit: "2GB".into(),
            memory_limit: "0".into(),
            max_result_size: "1GB".into(),
            idle_session_timeout: Duration::ZERO,
            statement_timeout: Duration::ZERO,
            authentication_timeout: Duration::from_secs(60),
            demo_rate: 1_000,
            demo_partitions: 3,
        }
    }
}

impl Config {
    /// Defaults, overlaid by `file` (if given) and by `LAMBDADB_*` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        Self::load_from(file, &vars)
    }

    fn load_from(file: Option<&Path>, env: &[(String, String)]) -> Result<Self, ConfigError> {
        let mut table = match toml::Value::try_from(Config::default()) {
            Ok(toml::Value::Table(t)) => t,
            _ => return Err(ConfigError::Invalid("defaults do not serialize".into())),
        };
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let file_table: toml::Table = text
                .parse()
                .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
            for (k, v) in file_table {
                table.insert(k, v);
            }
        }
        let mut password = Secret::default();
        for (name, value) in env {
            let Some(key) = name.strip_prefix("LAMBDADB_") else {
                continue;
            };
            // Not configuration keys: the log filter and the test harness's own.
            if key == "LOG" || key.starts_with("TEST_") {
                continue;
            }
            // The one secret, kept out of the serialized configuration.
            if key == "KAFKA_SASL_PASSWORD" {
                password = Secret::new(value.clone());
                continue;
            }
            let key = key.to_ascii_lowercase();
            let Some(default) = table.get(&key) else {
                return Err(ConfigError::Invalid(format!(
                    "unknown environment variable {name}: no configuration key '{key}'"
                )));
            };
            let parsed = match default {
                toml::Value::Integer(_) => value
                    .parse::<i64>()
                    .map(toml::Value::Integer)
                    .map_err(|_| ConfigError::Invalid(format!("{name}={value}: not an integer")))?,
                toml::Value::Boolean(_) => value
                    .parse::<bool>()
                    .map(toml::Value::Boolean)
                    .map_err(|_| {
                        ConfigError::Invalid(format!("{name}={value}: use true or false"))
                    })?,
                _ => toml::Value::String(value.clone()),
            };
            table.insert(key, parsed);
        }
        let mut config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.kafka_sasl_password = password;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.ballista_scheduler()?;
        match self.auth.as_str() {
            "trust" => {}
            "scram-sha-256" => {
                if self.users.is_empty() {
                    return Err(ConfigError::Invalid(
                        "auth = \"scram-sha-256\" needs at least one [[users]] entry with a password verifier (lambdadb passwd prints one)".into(),
                    ));
                }
                for u in &self.users {
                    if !u.password.starts_with("SCRAM-SHA-256$") {
                        return Err(ConfigError::Invalid(format!(
                            "user {}: password must be a SCRAM-SHA-256 verifier (run `lambdadb passwd`), never a plaintext password",
                            u.name
                        )));
                    }
                }
            }
            other => {
                return Err(ConfigError::Invalid(format!(
                    "auth = \"{other}\": use \"trust\" or \"scram-sha-256\""
                )));
            }
        }
        for u in &self.users {
            if u.role != "reader" && u.role != "admin" {
                return Err(ConfigError::Invalid(format!(
                    "user {}: role \"{}\" is neither \"reader\" nor \"admin\"",
                    u.name, u.role
                )));
            }
        }
        parse_size(&self.query_memory_limit).map_err(ConfigError::Invalid)?;
        parse_size(&self.memory_limit).map_err(ConfigError::Invalid)?;
        parse_size(&self.max_result_size).map_err(ConfigError::Invalid)?;
        parse_size(&self.result_cache_size).map_err(ConfigError::Invalid)?;
        parse_size(&self.speed_memory_limit).map_err(ConfigError::Invalid)?;
        parse_size(&self.compact_target_size).map_err(ConfigError::Invalid)?;
        if !matches!(self.retention_gap.as_str(), "stop" | "skip") {
            return Err(ConfigError::Invalid(format!(
                "retention_gap = \"{}\": use \"stop\" or \"skip\"",
                self.retention_gap
            )));
        }
        self.validate_role()?;
        if self.lease_expiry < Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "lease_expiry must be at least 1s: the holder renews every third of it".into(),
            ));
        }
        if self.tls_cert.is_empty() != self.tls_key.is_empty() {
            return Err(ConfigError::Invalid(
                "set both tls_cert and tls_key, or neither".into(),
            ));
        }
        crate::kafka::validate(&self.kafka).map_err(ConfigError::Invalid)?;
        if self.tls_required && self.tls_cert.is_empty() {
            return Err(ConfigError::Invalid(
                "tls_required = true needs tls_cert and tls_key: without them no client could connect".into(),
            ));
        }
        Ok(())
    }

    /// Checks `role` against `master_url` (also after `--role` overrides it).
    pub fn validate_role(&self) -> Result<(), ConfigError> {
        match self.role.as_str() {
            "all" => {}
            "writer" | "reader" if self.master_url.is_empty() => {
                return Err(ConfigError::Invalid(format!(
                    "role = \"{}\" needs a shared master dataset: set master_url = \"s3://bucket/prefix\" (the same for every process of the deployment)",
                    self.role
                )));
            }
            "writer" | "reader" => {}
            other => {
                return Err(ConfigError::Invalid(format!(
                    "role = \"{other}\": use \"all\", \"writer\" or \"reader\""
                )));
            }
        }
        Ok(())
    }

    /// Whether this process competes for the writer lease (`all` or `writer`).
    pub fn writer_capable(&self) -> bool {
        self.role != "reader"
    }

    /// Whether the master dataset is shared by several processes (on an
    /// object store), so that writing needs the lease.
    pub fn shared_store(&self) -> bool {
        !self.master_url.is_empty()
    }

    /// Whether a user may connect with trust authentication.
    pub fn trusts(&self, user: &str) -> bool {
        if self.users.is_empty() {
            user == self.user
        } else {
            self.users.iter().any(|u| u.name == user)
        }
    }
}

impl Config {
    /// `query_memory_limit` in bytes (validated at load).
    pub fn query_memory_bytes(&self) -> usize {
        parse_size(&self.query_memory_limit).unwrap_or(2 << 30)
    }

    /// `memory_limit` in bytes: the configured size, or three quarters of the
    /// machine's memory for "0" (8 GB where that cannot be read).
    pub fn memory_bytes(&self) -> usize {
        match parse_size(&self.memory_limit) {
            Ok(n) if n > 0 => n,
            _ => machine_memory().map(|m| m / 4 * 3).unwrap_or(8 << 30),
        }
    }

    /// The properties every Kafka client of the server is created with (the
    /// `[kafka]` table and the SASL password), or why they cannot be read.
    pub fn kafka_properties(&self) -> Result<Vec<(String, Secret)>, ConfigError> {
        crate::kafka::client_properties(
            &self.kafka,
            &self.kafka_sasl_password,
            &self.kafka_sasl_password_file,
        )
        .map_err(ConfigError::Invalid)
    }

    /// `compact_target_size` in bytes (validated at load).
    pub fn compact_target_bytes(&self) -> u64 {
        parse_size(&self.compact_target_size).unwrap_or(128 << 20) as u64
    }

    /// `speed_memory_limit` in bytes.
    pub fn speed_memory_bytes(&self) -> usize {
        parse_size(&self.speed_memory_limit).unwrap_or(2 << 30)
    }

    /// `result_cache_size` in bytes (validated at load); 0 disables the result cache.
    pub fn result_cache_bytes(&self) -> usize {
        parse_size(&self.result_cache_size).unwrap_or(0)
    }
}

/// The machine's memory in bytes (Linux `MemTotal`).
fn machine_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: usize = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_file_then_env() {
        let dir = std::env::temp_dir().join(format!("lambdadb-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:7000\"\ndemo_rate = 5\n").unwrap();
        let env = vec![
            ("LAMBDADB_DEMO_RATE".to_string(), "7".to_string()),
            ("LAMBDADB_ARCHIVE_INTERVAL".to_string(), "250ms".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ];
        let c = Config::load_from(Some(&file), &env).unwrap();
        assert_eq!(c.listen, "127.0.0.1:7000");
        assert_eq!(c.demo_rate, 7);
        assert_eq!(c.archive_interval, Duration::from_millis(250));
        assert_eq!(c.user, "lambdadb");
    }

    #[test]
    fn refuses_unknown_keys() {
        let env = vec![("LAMBDADB_LISTNE".to_string(), "x".to_string())];
        let err = Config::load_from(None, &env).unwrap_err().to_string();
        assert!(err.contains("LAMBDADB_LISTNE"), "{err}");
        let dir = std::env::temp_dir().join(format!("lambdadb-config2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.toml");
        std::fs::write(&file, "lisen = \"x\"\n").unwrap();
        assert!(Config::load_from(Some(&file), &[]).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("2gb").unwrap(), 2 << 30);
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("5ms").unwrap(), Duration::from_millis(5));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("3 weeks").is_err());
    }
}
