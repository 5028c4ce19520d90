//! The result cache (moka), bounded by bytes.
//!
//! An entry is the result of one statement: its Arrow batches, the snapshot
//! versions it read (one number per table it depends on, taken before the query
//! took its snapshot) and when it was computed. The key is what else decides the
//! answer: the normalized statement, the parameter values, the user, and the
//! session settings that change results.
//!
//! A lookup hits when the versions the caller reads now equal the entry's: no
//! event reached any table it read, so the answer is exactly the one a fresh run
//! would give. With a `max_staleness` above zero, a session also takes an entry
//! computed at most that long ago, whatever changed since.
//!
//! It knows nothing of what a version means (the serving layer decides) and
//! imports no other lambdadb crate. Unit tests sit beside the code;
//! `integration/test_cache.py` tests hits and misses through the server.

#![warn(missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use moka::sync::Cache;

/// What, besides the data read, decides a statement's answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The statement as normalized by the caller (parsed and printed back, or
    /// whitespace-collapsed text for the simple protocol).
    pub statement: String,
    /// Parameter values, printed.
    pub params: Vec<String>,
    /// The session's user: entries are never shared between users.
    pub user: String,
    /// Settings that change answers (time zone, search path).
    pub settings: String,
}

/// What the tables a statement read looked like: `(table, version)` pairs.
pub type Versions = Vec<(String, u64)>;

/// One cached result and the table versions it was computed from.
#[derive(Debug)]
pub struct Entry {
    /// Schema of the result.
    pub schema: SchemaRef,
    /// The result's rows.
    pub batches: Vec<RecordBatch>,
    /// Versions of the tables read, taken before the query took its snapshot.
    pub versions: Versions,
    /// When the result was computed; compared with `max_staleness` on a lookup.
    pub computed_at: Instant,
    /// Memory the batches take ([`batches_bytes`]): the entry's weight.
    pub bytes: usize,
}

/// How a lookup went, for `lambdadb.cache` and the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// Same versions: the exact answer.
    Exact,
    /// Older versions, within the session's staleness allowance.
    Stale,
}

/// Counters and sizes of the cache, as `lambdadb.cache` shows them.
#[derive(Debug, Clone, Copy, Default)]
pub struct Stats {
    /// Entries held.
    pub entries: u64,
    /// Bytes the held entries weigh.
    pub bytes: u64,
    /// Configured capacity in bytes; 0 means the cache is disabled.
    pub capacity: u64,
    /// Lookups answered exactly (same versions).
    pub hits: u64,
    /// Lookups answered by an older entry within the session's `max_staleness`.
    pub stale_hits: u64,
    /// Lookups the cache could not answer.
    pub misses: u64,
    /// Results stored (too large ones are refused and not counted).
    pub inserts: u64,
}

/// The result cache: statement results shared by all sessions, bounded by bytes.
pub struct ResultCache {
    cache: Cache<CacheKey, Arc<Entry>>,
    capacity: u64,
    /// Larger results are not kept: one would evict everything else.
    max_entry: usize,
    hits: AtomicU64,
    stale_hits: AtomicU64,
    misses: AtomicU64,
    inserts: AtomicU64,
}

impl ResultCache {
    /// A cache holding at most `capacity` bytes of results; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        let cache = Cache::builder()
            .max_capacity(capacity as u64)
            .weigher(|_k: &CacheKey, e: &Arc<Entry>| e.bytes.min(u32::MAX as usize) as u32)
            .build();
        Self {
            cache,
            capacity: capacity as u64,
            max_entry: capacity / 8,
            hits: AtomicU64::new(0),
            stale_hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
        }
    }

    /// Whether the cache keeps anything (a capacity of 0 disables it).
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Largest result worth collecting for the cache.
    pub fn max_entry_bytes(&self) -> usize {
        self.max_entry
    }

    /// The entry for `key` if it may answer now: `current` gives the version
    /// each of its tables has now (`None`: the table is gone).
    pub fn get(
        &self,
        key: &CacheKey,
        max_staleness: Duration,
        current: impl Fn(&str) -> Option<u64>,
    ) -> Option<(Arc<Entry>, Lookup)> {
        if !self.enabled() {
            return None;
        }
        let found = self.cache.get(key).and_then(|e| {
            let same = e.versions.iter().all(|(t, v)| current(t) == Some(*v));
            if same {
                Some((e, Lookup::Exact))
            } else if !max_staleness.is_zero() && e.computed_at.elapsed() <= max_staleness {
                Some((e, Lookup::Stale))
            } else {
                None
            }
        });
        match &found {
            Some((_, Lookup::Exact)) => self.hits.fetch_add(1, Ordering::Relaxed),
            Some((_, Lookup::Stale)) => self.stale_hits.fetch_add(1, Ordering::Relaxed),
            None => self.misses.fetch_add(1, Ordering::Relaxed),
        };
        found
    }

    /// Keeps a result computed from `versions`.
    pub fn insert(&self, key: CacheKey, entry: Entry) {
        if !self.enabled() || entry.bytes > self.max_entry {
            return;
        }
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.cache.insert(key, Arc::new(entry));
    }

    /// Drops every entry; the hit, miss and insert counters are kept.
    pub fn clear(&self) {
        self.cache.invalidate_all();
    }

    /// Current counters and sizes (pending evictions are applied first).
    pub fn stats(&self) -> Stats {
        self.cache.run_pending_tasks();
        Stats {
            entries: self.cache.entry_count(),
            bytes: self.cache.weighted_size(),
            capacity: self.capacity,
            hits: self.hits.load(Ordering::Relaxed),
            stale_hits: self.stale_hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            inserts: self.inserts.load(Ordering::Relaxed),
        }
    }
}

/// Bytes an entry holds (the weigher's figure).
pub fn batches_bytes(batches: &[RecordBatch]) -> usize {
    batches
        .iter()
        .map(|b| b.get_array_memory_size())
        .sum::<usize>()
        + 256
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    fn key(s: &str) -> CacheKey {
        CacheKey {
            statement: s.into(),
            params: vec![],
            user: "u".into(),
            settings: String::new(),
        }
    }

    fn entry(v: u64) -> Entry {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1]))])
            .unwrap();
        Entry {
            schema,
            bytes: batches_bytes(std::slice::from_ref(&b)),
            batches: vec![b],
            versions: vec![("events".into(), v)],
            computed_at: Instant::now(),
        }
    }

    #[test]
    fn exact_only_at_the_same_versions_stale_only_when_allowed() {
        let c = ResultCache::new(1 << 20);
        c.insert(key("q"), entry(7));
        let at = |v: u64| move |_: &str| Some(v);
        assert_eq!(
            c.get(&key("q"), Duration::ZERO, at(7)).unwrap().1,
            Lookup::Exact
        );
        assert!(c.get(&key("q"), Duration::ZERO, at(8)).is_none());
        assert_eq!(
            c.get(&key("q"), Duration::from_secs(60), at(8)).unwrap().1,
            Lookup::Stale
        );
        assert!(c.get(&key("q"), Duration::ZERO, |_| None).is_none());
        assert!(c.get(&key("other"), Duration::ZERO, at(7)).is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.stale_hits, s.misses), (1, 1, 3));
    }

    #[test]
    fn disabled_cache_keeps_nothing() {
        let c = ResultCache::new(0);
        c.insert(key("q"), entry(1));
        assert!(c.get(&key("q"), Duration::ZERO, |_| Some(1)).is_none());
    }
}
