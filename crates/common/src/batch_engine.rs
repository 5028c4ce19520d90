//! `batch_engine`: where full recomputes of views run (docs/scale-out.md).

use crate::config::{Config, ConfigError};

impl Config {
    /// The Ballista scheduler's `HOST:PORT` when `batch_engine` names one,
    /// `None` for `local`.
    pub fn ballista_scheduler(&self) -> Result<Option<String>, ConfigError> {
        match self.batch_engine.trim() {
            "local" | "" => Ok(None),
            other => match other.strip_prefix("ballista://") {
                Some(addr)
                    if addr.rsplit_once(':').is_some_and(|(h, p)| {
                        !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0)
                    }) =>
                {
                    Ok(Some(addr.to_string()))
                }
                _ => Err(ConfigError::Invalid(format!(
                    "batch_engine = \"{other}\": use \"local\" or \"ballista://HOST:PORT\" (a Ballista scheduler, see docs/scale-out.md)"
                ))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_engine_names_a_scheduler_or_local() {
        let with = |v: &str| Config {
            batch_engine: v.into(),
            ..Config::default()
        };
        assert_eq!(with("local").ballista_scheduler().unwrap(), None);
        assert_eq!(
            with("ballista://127.0.0.1:50050")
                .ballista_scheduler()
                .unwrap()
                .as_deref(),
            Some("127.0.0.1:50050")
        );
        for bad in [
            "ballista://host",
            "spark://h:1",
            "ballista://:7",
            "ballista://h:0",
        ] {
            let err = with(bad).ballista_scheduler().unwrap_err().to_string();
            assert!(err.contains("ballista://HOST:PORT"), "{bad}: {err}");
        }
    }
}
