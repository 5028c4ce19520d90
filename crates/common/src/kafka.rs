//! Kafka client settings beyond the bootstrap list: TLS and SASL properties
//! passed through to librdkafka, with the one secret (the SASL password) kept
//! out of the configuration file, the logs and `Debug` output.

use std::collections::BTreeMap;
use std::path::Path;

/// A secret string; `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that hands it to a client library.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether no secret was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "(unset)"
        } else {
            "(secret)"
        })
    }
}

/// Properties lambdadb sets itself: its offsets are its own (see `speed`), and
/// the broker list has its own key.
const OWNED: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
];

/// Properties that hold secrets, refused in the file.
const SECRETS: &[&str] = &[
    "sasl.password",
    "ssl.key.password",
    "ssl.keystore.password",
    "ssl.key.pem",
    "sasl.oauthbearer.client.secret",
];

/// Checks the `[kafka]` table: no property lambdadb owns, no secret.
pub fn validate(properties: &BTreeMap<String, String>) -> Result<(), String> {
    for key in properties.keys() {
        let k = key.to_ascii_lowercase();
        if OWNED.contains(&k.as_str()) {
            return Err(format!(
                "[kafka] {key}: lambdadb sets this itself (the broker list is `brokers`; offsets are tracked in the master dataset)"
            ));
        }
        if SECRETS.contains(&k.as_str()) {
            return Err(format!(
                "[kafka] {key}: secrets do not go in the configuration file; give the SASL password in kafka_sasl_password_file or LAMBDADB_KAFKA_SASL_PASSWORD"
            ));
        }
    }
    Ok(())
}

/// The properties for a Kafka client: the `[kafka]` table and, when given, the
/// SASL password from `password` or else from the first line of `password_file`.
pub fn client_properties(
    table: &BTreeMap<String, String>,
    password: &Secret,
    password_file: &Path,
) -> Result<Vec<(String, Secret)>, String> {
    let mut out: Vec<(String, Secret)> = table
        .iter()
        .map(|(k, v)| (k.clone(), Secret::new(v.clone())))
        .collect();
    if !password.is_empty() {
        out.push(("sasl.password".into(), password.clone()));
    } else if !password_file.as_os_str().is_empty() {
        let text = std::fs::read_to_string(password_file).map_err(|e| {
            format!(
                "cannot read kafka_sasl_password_file {}: {e}",
                password_file.display()
            )
        })?;
        let line = text.lines().next().unwrap_or_default().to_string();
        out.push(("sasl.password".into(), Secret::new(line)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_stay_out_of_files_and_debug() {
        let mut t = BTreeMap::new();
        t.insert("security.protocol".to_string(), "SASL_SSL".to_string());
        assert!(validate(&t).is_ok());
        t.insert("sasl.password".to_string(), "hunter2".to_string());
        assert!(
            validate(&t)
                .unwrap_err()
                .contains("LAMBDADB_KAFKA_SASL_PASSWORD")
        );
        t.remove("sasl.password");
        t.insert("group.id".to_string(), "x".to_string());
        assert!(validate(&t).unwrap_err().contains("sets this itself"));
        t.remove("group.id");

        let dir = std::env::temp_dir().join(format!("lambdadb-kafka-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let props = client_properties(&t, &Secret::default(), &file).unwrap();
        let pw = props.iter().find(|(k, _)| k == "sasl.password").unwrap();
        assert_eq!(pw.1.expose(), "s3cret");
        assert!(!format!("{props:?}").contains("s3cret"));
        let env = client_properties(&t, &Secret::new("fromenv"), &file).unwrap();
        assert_eq!(env.last().unwrap().1.expose(), "fromenv");
        assert!(client_properties(&t, &Secret::default(), &dir.join("missing")).is_err());
    }
}
