//! Sizes (`512MB`) and durations (`10s`) as configuration spells them.

use std::time::Duration;

/// `"10s"` into `("10", "s")`: leading digits, then the unit.
fn split_unit(text: &str) -> (&str, &str) {
    let t = text.trim();
    t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()))
}

/// Parses `512MB`, `2GB`, `64KB`, or a bare number of bytes (1024-based units).
pub fn parse_size(text: &str) -> Result<usize, String> {
    let (num, unit) = split_unit(text);
    let n: usize = num
        .parse()
        .map_err(|_| format!("'{text}' is not a size such as 512MB or 2GB"))?;
    let factor = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "KB" | "K" => 1 << 10,
        "MB" | "M" => 1 << 20,
        "GB" | "G" => 1 << 30,
        "TB" | "T" => 1 << 40,
        _ => return Err(format!("'{text}': unknown unit, use B, KB, MB, GB or TB")),
    };
    Ok(n * factor)
}

/// Parses `250ms`, `10s`, `5m`, `1h`, `7d` (and a bare number of seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (num, unit) = split_unit(text);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("'{text}' is not a duration such as 500ms, 10s, 5m, 1h or 7d"))?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" | "min" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        "d" => Duration::from_secs(n * 24 * 3600),
        _ => return Err(format!("'{text}': unknown unit, use ms, s, m, h or d")),
    };
    Ok(d)
}

/// serde for a `Duration` field written as `250ms` / `10s`.
pub(crate) mod duration_str {
    use super::*;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        if d.subsec_millis() != 0 || d.as_secs() == 0 {
            s.serialize_str(&format!("{}ms", d.as_millis()))
        } else {
            s.serialize_str(&format!("{}s", d.as_secs()))
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        parse_duration(&text).map_err(serde::de::Error::custom)
    }
}
