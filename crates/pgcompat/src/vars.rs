//! Per-session configuration parameters (`SET`, `SHOW`, `RESET`, `current_setting`,
//! `set_config`, `pg_settings`), with PostgreSQL's defaults and names.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{QueryError, Result};

/// The one version lambdadb reports everywhere (ParameterStatus, `SHOW
/// server_version`, `version()`): PostgreSQL 15's dialect and catalog, naming lambdadb.
pub const SERVER_VERSION: &str = concat!("15.0 (lambdadb ", env!("CARGO_PKG_VERSION"), ")");

/// Parameters a PostgreSQL server reports to clients when they change.
pub const REPORTED: &[&str] = &[
    "application_name",
    "client_encoding",
    "DateStyle",
    "IntervalStyle",
    "TimeZone",
    "integer_datetimes",
    "is_superuser",
    "server_encoding",
    "server_version",
    "session_authorization",
    "standard_conforming_strings",
];

/// (name as PostgreSQL spells it, default, description)
const DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "application_name",
        "",
        "Sets the application name to be reported in statistics and logs.",
    ),
    (
        "client_encoding",
        "UTF8",
        "Sets the client's character set encoding.",
    ),
    (
        "client_min_messages",
        "notice",
        "Sets the message levels that are sent to the client.",
    ),
    (
        "DateStyle",
        "ISO, MDY",
        "Sets the display format for date and time values.",
    ),
    (
        "default_transaction_isolation",
        "read committed",
        "Sets the transaction isolation level of each new transaction.",
    ),
    (
        "default_transaction_read_only",
        "on",
        "lambdadb sessions are read-only: writes go through Kafka.",
    ),
    (
        "extra_float_digits",
        "1",
        "Sets the number of digits displayed for floating-point values.",
    ),
    (
        "idle_in_transaction_session_timeout",
        "0",
        "Sets the maximum allowed idle time between queries, when in a transaction.",
    ),
    (
        "integer_datetimes",
        "on",
        "Shows whether datetimes are integer based.",
    ),
    (
        "IntervalStyle",
        "postgres",
        "Sets the display format for interval values.",
    ),
    (
        "is_superuser",
        "off",
        "Shows whether the current user is a superuser.",
    ),
    (
        "idle_session_timeout",
        "0",
        "Sets the maximum allowed idle time between queries, when not in a transaction.",
    ),
    (
        "lambdadb.max_result_size",
        "1GB",
        "Largest result one statement may send (0: unlimited).",
    ),
    (
        "lambdadb.result_cache",
        "on",
        "Whether this session's queries use the result cache (off: always computed).",
    ),
    (
        "lambdadb.max_staleness",
        "0",
        "How old a cached answer a session accepts (0: always exact).",
    ),
    (
        "lock_timeout",
        "0",
        "Sets the maximum allowed duration of any wait for a lock.",
    ),
    (
        "max_identifier_length",
        "63",
        "Shows the maximum identifier length.",
    ),
    (
        "max_index_keys",
        "32",
        "Shows the maximum number of index keys.",
    ),
    (
        "role",
        "none",
        "Sets the current session's role (only the user that logged in).",
    ),
    (
        "search_path",
        "\"$user\", public",
        "Sets the schema search order for names that are not schema-qualified.",
    ),
    (
        "server_encoding",
        "UTF8",
        "Shows the server (database) character set encoding.",
    ),
    (
        "server_version",
        SERVER_VERSION,
        "Shows the server version.",
    ),
    (
        "server_version_num",
        "150000",
        "Shows the server version as an integer.",
    ),
    (
        "session_authorization",
        "lambdadb",
        "Sets the session user name.",
    ),
    (
        "standard_conforming_strings",
        "on",
        "Causes '...' strings to treat backslashes literally.",
    ),
    (
        "statement_timeout",
        "0",
        "Sets the maximum allowed duration of any statement.",
    ),
    (
        "TimeZone",
        "UTC",
        "Sets the time zone for displaying and interpreting time stamps.",
    ),
    (
        "transaction_isolation",
        "read committed",
        "Sets the current transaction's isolation level.",
    ),
    (
        "transaction_read_only",
        "on",
        "Shows whether the current transaction is read-only.",
    ),
];

/// The parameters of one session. Cloned handles share the same values, so the
/// `current_setting` function sees what `SET` stored.
#[derive(Debug, Clone, Default)]
pub struct SessionVars {
    values: Arc<Mutex<BTreeMap<String, String>>>,
    /// Defaults from the server's configuration, which RESET returns to.
    defaults: Arc<BTreeMap<&'static str, String>>,
    /// Who logged in: `session_authorization` and `role` may name only them.
    login: Arc<Mutex<String>>,
    /// Set for readers: the settings the configuration bounds ([`CEILINGS`])
    /// may be lowered but not raised above the server's value.
    restricted: Arc<AtomicBool>,
}

/// Settings whose server value is a ceiling for readers: a statement's time
/// and the bytes of its result are the server's to bound, not the client's.
pub const CEILINGS: &[&str] = &["statement_timeout", "lambdadb.max_result_size"];

/// PostgreSQL matches parameter names case-insensitively.
fn canonical(name: &str) -> Option<&'static str> {
    let n = name.trim().trim_matches('"');
    let n = match n.to_ascii_lowercase().as_str() {
        "time zone" | "timezone" => "timezone".to_string(),
        "transaction isolation level" => "transaction_isolation".into(),
        other => other.to_string(),
    };
    // `SHOW lambdadb.max_staleness` arrives as the words `lambdadb max_staleness`.
    let dotted = n.replace(' ', ".");
    DEFAULTS
        .iter()
        .map(|d| d.0)
        .find(|d| d.eq_ignore_ascii_case(&n) || d.eq_ignore_ascii_case(&dotted))
}

impl SessionVars {
    /// The parameters of a new session of `user`, all at their defaults.
    pub fn new(user: &str) -> Self {
        let v = Self::default();
        v.set_login(user);
        v
    }

    /// Records who logged in; the session acts as this user, which is what
    /// `session_authorization` reads.
    pub fn set_login(&self, user: &str) {
        *self.login.lock().expect("vars lock") = user.to_string();
    }

    /// With `on`, the settings of [`CEILINGS`] may only be lowered (readers).
    pub fn restrict(&self, on: bool) {
        self.restricted.store(on, Ordering::SeqCst);
    }

    /// A parameter's current value; an unknown name is undefined_object (42704).
    pub fn get(&self, name: &str) -> Result<String> {
        let key = canonical(name).ok_or_else(|| unknown(name))?;
        Ok(self.value_of(&self.values.lock().expect("vars lock"), key))
    }

    /// `key`'s value: who logged in for `session_authorization` (nothing else
    /// may be set), else what SET stored or the default.
    fn value_of(&self, values: &BTreeMap<String, String>, key: &'static str) -> String {
        if key == "session_authorization" {
            return self.login.lock().expect("vars lock").clone();
        }
        values
            .get(key)
            .cloned()
            .unwrap_or_else(|| self.default_of(key))
    }

    /// The server's defaults for parameters its configuration sets.
    pub fn with_defaults(mut self, defaults: &[(&str, String)]) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (name, value) in defaults {
            let key = canonical(name).ok_or_else(|| unknown(name))?;
            map.insert(key, normalize(key, value)?);
        }
        self.defaults = Arc::new(map);
        Ok(self)
    }

    fn default_of(&self, key: &'static str) -> String {
        self.defaults
            .get(key)
            .cloned()
            .unwrap_or_else(|| default_of(key).to_string())
    }

    /// The session's time zone; None is UTC.
    pub fn time_zone(&self) -> Option<chrono_tz::Tz> {
        let name = self.get("TimeZone").ok()?;
        (name != "UTC").then(|| name.parse().ok()).flatten()
    }

    /// Idle session timeout in milliseconds (0: none).
    pub fn idle_session_timeout_ms(&self) -> u64 {
        self.get("idle_session_timeout")
            .ok()
            .and_then(|v| parse_ms(&v))
            .unwrap_or(0)
    }

    /// Whether the session uses the result cache.
    pub fn result_cache(&self) -> bool {
        !matches!(
            self.get("lambdadb.result_cache").as_deref(),
            Ok("off" | "false" | "0")
        )
    }

    /// How old a cached answer the session accepts (0: only exact ones).
    pub fn max_staleness(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.get("lambdadb.max_staleness")
                .ok()
                .and_then(|v| parse_ms(&v))
                .unwrap_or(0),
        )
    }

    /// The settings that change a query's answer (not only its rendering), for
    /// the result cache's key.
    pub fn result_settings(&self) -> String {
        let get = |k| self.get(k).unwrap_or_default();
        format!("{}|{}", get("TimeZone"), get("search_path"))
    }

    /// Largest result in bytes (0: unlimited).
    pub fn max_result_bytes(&self) -> u64 {
        self.get("lambdadb.max_result_size")
            .ok()
            .and_then(|v| lambdadb_common::config::parse_size(&v).ok())
            .unwrap_or(0) as u64
    }

    /// Sets a parameter; returns its canonical name when clients must be told.
    pub fn set(&self, name: &str, value: &str) -> Result<Option<&'static str>> {
        let key = canonical(name).ok_or_else(|| unknown(name))?;
        let value = normalize(key, value)?;
        let value = self.allowed(key, value)?;
        // session_authorization reads the login (allowed() checked it is that).
        if key != "session_authorization" {
            self.values
                .lock()
                .expect("vars lock")
                .insert(key.to_string(), value);
        }
        Ok(REPORTED.contains(&key).then_some(key))
    }

    /// Returns a parameter to its default; returns its canonical name when clients must be told.
    pub fn reset(&self, name: &str) -> Result<Option<&'static str>> {
        let key = canonical(name).ok_or_else(|| unknown(name))?;
        self.values.lock().expect("vars lock").remove(key);
        Ok(REPORTED.contains(&key).then_some(key))
    }

    /// `RESET ALL` / `DISCARD ALL`; who the session is stays.
    pub fn reset_all(&self) {
        self.values.lock().expect("vars lock").clear();
    }

    /// `value` as `key` may take it in this session: `session_authorization`
    /// and `role` name only the user who logged in (42501 otherwise, as for a
    /// PostgreSQL user who is not a member), and a reader may not raise a
    /// [`CEILINGS`] setting above the server's value.
    fn allowed(&self, key: &'static str, value: String) -> Result<String> {
        let login = self.login.lock().expect("vars lock").clone();
        match key {
            "session_authorization" if value.eq_ignore_ascii_case("default") => Ok(login),
            "session_authorization" if value == login => Ok(value),
            "session_authorization" => Err(QueryError::InsufficientPrivilege(format!(
                "permission denied to set session authorization \"{value}\"; a session acts as the user that logged in ({login})"
            ))),
            "role" if value.eq_ignore_ascii_case("none") => Ok("none".into()),
            "role" if value == login => Ok(value),
            "role" => Err(QueryError::InsufficientPrivilege(format!(
                "permission denied to set role \"{value}\"; a session acts as the user that logged in ({login})"
            ))),
            _ if self.restricted.load(Ordering::SeqCst) && CEILINGS.contains(&key) => {
                let ceiling = self.default_of(key);
                if raises(key, &value, &ceiling) {
                    return Err(QueryError::InsufficientPrivilege(format!(
                        "permission denied to raise {key} above the server's {ceiling}: a reader may only lower it (set {} in the configuration)",
                        key.trim_start_matches("lambdadb.")
                    )));
                }
                Ok(value)
            }
            _ => Ok(value),
        }
    }

    /// Every parameter with its current value and description, for `pg_settings`.
    pub fn all(&self) -> Vec<(String, String, String)> {
        let values = self.values.lock().expect("vars lock");
        DEFAULTS
            .iter()
            .map(|(n, _, desc)| (n.to_string(), self.value_of(&values, n), desc.to_string()))
            .collect()
    }

    /// Statement timeout in milliseconds (0: none).
    pub fn statement_timeout_ms(&self) -> u64 {
        self.get("statement_timeout")
            .ok()
            .and_then(|v| parse_ms(&v))
            .unwrap_or(0)
    }
}

fn default_of(key: &str) -> &'static str {
    DEFAULTS
        .iter()
        .find(|d| d.0 == key)
        .map(|d| d.1)
        .unwrap_or("")
}

fn unknown(name: &str) -> QueryError {
    QueryError::UndefinedObject(format!(
        "unrecognized configuration parameter \"{}\"",
        name.trim()
    ))
}

/// Validates values lambdadb interprets itself.
fn normalize(key: &str, value: &str) -> Result<String> {
    let v = value.trim().trim_matches('\'').to_string();
    match key {
        "TimeZone" if v.eq_ignore_ascii_case("utc") || v == "0" || v.eq_ignore_ascii_case("gmt") || v == "+00" || v.eq_ignore_ascii_case("Etc/UTC") || v.eq_ignore_ascii_case("default") || v.eq_ignore_ascii_case("local") => {
            Ok("UTC".into())
        }
        "TimeZone" => chrono_tz::Tz::from_str_insensitive(&v)
            .map(|tz| tz.name().to_string())
            .map_err(|_| QueryError::InvalidParameter(format!(
                "invalid value for parameter \"TimeZone\": \"{v}\"; use a time zone name such as 'Europe/Berlin' or 'UTC'"
            ))),
        "client_encoding" if !(v.eq_ignore_ascii_case("utf8") || v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("unicode")) => {
            Err(QueryError::FeatureNotSupported(format!("encoding \"{v}\" is not supported; use UTF8")))
        }
        "client_encoding" => Ok("UTF8".into()),
        "lambdadb.max_result_size" => lambdadb_common::config::parse_size(&v)
            .map(|_| v.clone())
            .map_err(|e| QueryError::InvalidParameter(format!("invalid value for parameter \"{key}\": {e}"))),
        "statement_timeout"
        | "lock_timeout"
        | "idle_in_transaction_session_timeout"
        | "idle_session_timeout"
        | "lambdadb.max_staleness" => {
            parse_ms(&v).map(|ms| ms.to_string()).ok_or_else(|| {
                QueryError::InvalidParameter(format!("invalid value for parameter \"{key}\": \"{v}\"; use milliseconds or a unit such as '5s'"))
            })
        }
        _ => Ok(v),
    }
}

/// Whether `value` of a [`CEILINGS`] setting is above `ceiling` (0 is no limit).
fn raises(key: &str, value: &str, ceiling: &str) -> bool {
    let amount = |v: &str| -> Option<u128> {
        match key {
            "statement_timeout" => parse_ms(v).map(u128::from),
            _ => lambdadb_common::config::parse_size(v)
                .ok()
                .map(|n| n as u128),
        }
    };
    match (amount(value), amount(ceiling)) {
        (Some(v), Some(c)) => c > 0 && (v == 0 || v > c),
        _ => true,
    }
}

/// PostgreSQL time values: a bare number is milliseconds; units ms, s, min, h.
pub fn parse_ms(v: &str) -> Option<u64> {
    let t = v.trim().trim_matches('\'');
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" => 1.0,
        "s" => 1000.0,
        "min" => 60_000.0,
        "h" => 3_600_000.0,
        "d" => 86_400_000.0,
        _ => return None,
    };
    Some((n * factor) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_show_reset() {
        let v = SessionVars::new("lambdadb");
        assert_eq!(v.get("timezone").unwrap(), "UTC");
        assert_eq!(
            v.set("application_name", "'psql'").unwrap(),
            Some("application_name")
        );
        assert_eq!(v.get("APPLICATION_NAME").unwrap(), "psql");
        let d = SessionVars::new("u")
            .with_defaults(&[("idle_session_timeout", "2s".into())])
            .unwrap();
        d.set("idle_session_timeout", "0").unwrap();
        assert_eq!(d.idle_session_timeout_ms(), 0);
        d.reset("idle_session_timeout").unwrap();
        assert_eq!(d.idle_session_timeout_ms(), 2000);
        assert_eq!(d.get("lambdadb max_result_size").unwrap(), "1GB");
        assert!(d.set("lambdadb.max_result_size", "lots").is_err());
        assert_eq!(v.set("statement_timeout", "5s").unwrap(), None);
        assert_eq!(v.statement_timeout_ms(), 5000);
        assert_eq!(v.set("TimeZone", "europe/paris").unwrap(), Some("TimeZone"));
        assert_eq!(v.get("timezone").unwrap(), "Europe/Paris");
        assert!(v.time_zone().is_some());
        assert!(v.set("TimeZone", "Mars/Olympus").is_err());
        v.set("TimeZone", "Etc/UTC").unwrap();
        assert!(v.time_zone().is_none());
        assert!(v.get("no_such_thing").is_err());
        v.reset_all();
        assert_eq!(v.get("application_name").unwrap(), "");
        assert_eq!(v.get("session_authorization").unwrap(), "lambdadb");
    }
}
