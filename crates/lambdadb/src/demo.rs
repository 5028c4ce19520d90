//! The demo clickstream: realistic, skewed, deterministic for a seed.
//!
//! Pages follow a Zipf-like skew, about 50 countries with a heavy head, three
//! devices, revenue only on purchases, and about 1% of events late by up to two
//! hours. `lambdadb generate` prints it; `serve` in embedded mode produces it live.

use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use tracing::warn;

const COUNTRIES: &[&str] = &[
    "US", "IN", "BR", "DE", "GB", "FR", "JP", "CA", "MX", "ID", "IT", "ES", "KR", "AU", "NL", "TR",
    "PL", "SE", "AR", "CO", "ZA", "NG", "EG", "PH", "VN", "TH", "MY", "SG", "CH", "BE", "AT", "NO",
    "DK", "FI", "IE", "PT", "CZ", "RO", "HU", "GR", "IL", "AE", "SA", "CL", "PE", "NZ", "UA", "PK",
    "BD", "KE",
];
const DEVICES: &[(&str, u32)] = &[("mobile", 58), ("desktop", 35), ("tablet", 7)];
const EVENT_TYPES: &[(&str, u32)] = &[
    ("page_view", 700),
    ("click", 200),
    ("add_to_cart", 60),
    ("purchase", 30),
    ("signup", 10),
];
const SECTIONS: &[&str] = &[
    "products", "blog", "docs", "pricing", "help", "category", "search",
];

#[derive(Args, Debug, Clone)]
pub struct GenerateArgs {
    /// Number of events.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Random seed: the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Event time of the first event (RFC 3339); defaults to the current hour.
    #[arg(long)]
    pub start: Option<DateTime<Utc>>,
    /// Simulated events per second, which spaces the event times.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// Fraction of events that arrive late (event time up to two hours earlier).
    #[arg(long, default_value_t = 0.01)]
    pub late_fraction: f64,
}

/// Deterministic event source.
pub struct Generator {
    rng: StdRng,
    late_fraction: f64,
    sessions: Vec<(u64, String)>,
    counter: u64,
}

impl Generator {
    pub fn new(seed: u64, late_fraction: f64) -> Self {
        Self {
            rng: StdRng::seed_from_u64(seed),
            late_fraction,
            sessions: Vec::new(),
            counter: 0,
        }
    }

    fn weighted<'a>(&mut self, items: &'a [(&'a str, u32)]) -> &'a str {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut x = self.rng.random_range(0..total);
        for (name, w) in items {
            if x < *w {
                return name;
            }
            x -= w;
        }
        items[0].0
    }

    /// Zipf-like rank in `0..n`: small ranks are much more likely.
    fn skewed(&mut self, n: usize) -> usize {
        let u: f64 = self.rng.random_range(0.0..1.0);
        (((n as f64 + 1.0).powf(u) - 1.0) as usize).min(n - 1)
    }

    /// One event as a JSON line, with `now` as its (on-time) event time.
    pub fn event(&mut self, now: DateTime<Utc>) -> String {
        self.counter += 1;
        // Reuse a recent session most of the time so sessions have several events.
        if self.sessions.is_empty() || self.rng.random_bool(0.15) {
            let user = 1 + self.skewed(200_000) as u64;
            let session = format!(
                "s{:x}{:06x}",
                self.counter,
                self.rng.random_range(0..0xffffffu32)
            );
            if self.sessions.len() >= 500 {
                let i = self.rng.random_range(0..self.sessions.len());
                self.sessions.swap_remove(i);
            }
            self.sessions.push((user, session));
        }
        let (user, session) = self.sessions[self.rng.random_range(0..self.sessions.len())].clone();
        let event_type = self.weighted(EVENT_TYPES);
        let page = format!(
            "/{}/{}",
            SECTIONS[self.skewed(SECTIONS.len())],
            self.skewed(400)
        );
        let country = COUNTRIES[self.skewed(COUNTRIES.len())];
        let device = self.weighted(DEVICES);
        let mut t = now;
        if self.rng.random_bool(self.late_fraction) {
            t -= chrono::Duration::milliseconds(self.rng.random_range(1..7_200_000));
        }
        let duration = if event_type == "page_view" {
            format!("{}", 200 + self.skewed(60_000))
        } else {
            "null".into()
        };
        let revenue = if event_type == "purchase" {
            format!("{:.2}", self.rng.random_range(1.0..500.0f64))
        } else {
            "null".into()
        };
        format!(
            r#"{{"event_time":"{}","user_id":{user},"session_id":"{session}","event_type":"{event_type}","page":"{page}","country":"{country}","device":"{device}","duration_ms":{duration},"revenue":{revenue}}}"#,
            t.to_rfc3339_opts(SecondsFormat::Millis, true)
        )
    }
}

/// `lambdadb generate`: events spaced by `rate` from `start`.
pub fn generate(args: GenerateArgs) -> anyhow::Result<()> {
    let start = args.start.unwrap_or_else(|| {
        let now = Utc::now();
        now - chrono::Duration::seconds(now.timestamp() % 3600)
    });
    let mut g = Generator::new(args.seed, args.late_fraction);
    let out = std::io::stdout();
    let mut w = BufWriter::new(out.lock());
    let step_us = (1_000_000.0 / args.rate.max(0.001)) as i64;
    for i in 0..args.count {
        let t = start + chrono::Duration::microseconds(step_us * i as i64);
        writeln!(w, "{}", g.event(t))?;
    }
    w.flush()?;
    Ok(())
}

/// Produces the live demo stream at `rate` events per second until the process
/// ends. Runs on its own thread.
pub fn spawn_live(brokers: String, topic: String, rate: u32) -> anyhow::Result<()> {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("compression.type", "lz4")
        .set("linger.ms", "5")
        .create()?;
    std::thread::Builder::new()
        .name("demo-generator".into())
        .spawn(move || {
            let mut g = Generator::new(rand::random(), 0.01);
            let tick = Duration::from_millis(20);
            let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0);
            let mut owed = 0.0;
            let mut next = Instant::now();
            loop {
                owed += per_tick;
                while owed >= 1.0 {
                    owed -= 1.0;
                    let line = g.event(Utc::now());
                    let rec: BaseRecord<'_, (), String> = BaseRecord::to(&topic).payload(&line);
                    if let Err((e, _)) = producer.send(rec) {
                        warn!("demo generator: {e}");
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
                next += tick;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                } else {
                    next = now;
                }
                let _ = producer.in_flight_count();
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_well_formed() {
        let t = "2026-01-01T00:00:00Z".parse().unwrap();
        let a: Vec<String> = {
            let mut g = Generator::new(7, 0.01);
            (0..200).map(|_| g.event(t)).collect()
        };
        let b: Vec<String> = {
            let mut g = Generator::new(7, 0.01);
            (0..200).map(|_| g.event(t)).collect()
        };
        assert_eq!(a, b);
        for line in &a {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            let purchase = v["event_type"] == "purchase";
            assert_eq!(v["revenue"].is_number(), purchase, "{line}");
        }
    }
}
