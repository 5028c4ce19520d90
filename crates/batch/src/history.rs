//! A view's batch versions: the one served and the ones kept for rollback,
//! recorded in `versions.json` (written atomically, fault points `view.current.*`).
//!
//! Bounded by count and age ([`VersionPolicy`]), so a view refreshed every
//! minute for a year keeps as many versions as one refreshed for a day.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::Result;
use crate::durable::{read_json, write_atomic};
use lambdadb_common::Watermark;

/// The history file inside a view's directory.
const HISTORY: &str = "versions.json";
/// Before versions were kept, only the served version was recorded, here.
const LEGACY_CURRENT: &str = "current.json";
/// The newest versions always kept whatever their age: a query planned a
/// moment ago may still scan one of them from its file.
const ALWAYS_KEPT: usize = 2;

/// How a version was computed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefreshKind {
    /// From every file of the master dataset (versions from before incremental
    /// runs existed were all full).
    #[default]
    Full,
    /// The previous version merged with the files committed since its watermark.
    Incremental,
}

impl RefreshKind {
    /// `full` or `incremental`, as `lambdadb.view_versions` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            RefreshKind::Full => "full",
            RefreshKind::Incremental => "incremental",
        }
    }
}

/// One published batch view version.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViewVersion {
    /// Number of the run that computed it; names its file (`v<version>.parquet`).
    pub version: u64,
    /// Source offsets folded into this version.
    pub watermark: Watermark,
    /// File name of the partial-state rows, relative to the view's directory.
    pub file: String,
    /// Files of earlier versions whose partial rows this version holds too,
    /// oldest first: an incremental run that chains writes only the partial
    /// states of the new events and carries its base's files (see
    /// [`crate::view::MAX_CHAIN`]). Partial rows merge, so several rows of one
    /// group across the files are one group to every query.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<String>,
    /// Partial-state rows in the version's files.
    pub rows: u64,
    /// The view's SQL this version was computed from; a different definition at
    /// start-up makes this version unusable.
    pub definition: String,
    /// When the run finished writing, in milliseconds since the Unix epoch.
    pub refreshed_at_ms: i64,
    /// How long the run took, in milliseconds.
    pub duration_ms: u64,
    /// Full or incremental.
    #[serde(default)]
    pub how: RefreshKind,
    /// When the full run this version descends from finished (itself, for a
    /// full one); drives `full_refresh_interval`. 0: unknown.
    #[serde(default)]
    pub full_at_ms: i64,
    /// Size of the version's files.
    #[serde(default)]
    pub bytes: u64,
    /// Master-dataset files the run read.
    #[serde(default)]
    pub input_files: u64,
    /// Master-dataset rows the run read.
    #[serde(default)]
    pub input_rows: u64,
    /// Where the run executed: `local`, or `ballista` (see [`crate::engine`]).
    #[serde(default = "local_engine")]
    pub engine: String,
}

fn local_engine() -> String {
    "local".into()
}

impl ViewVersion {
    /// Every file holding the version's rows: the carried ones, then its own.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.parts
            .iter()
            .map(String::as_str)
            .chain(std::iter::once(self.file.as_str()))
    }
}

/// Which versions of a view are kept.
#[derive(Debug, Clone, Copy)]
pub struct VersionPolicy {
    /// Versions kept (at most), the served one included.
    pub keep: usize,
    /// Versions older than this many milliseconds go, except the served one
    /// and the newest [`ALWAYS_KEPT`]; 0: no age limit.
    pub max_age_ms: u64,
}

impl Default for VersionPolicy {
    fn default() -> Self {
        Self {
            keep: 10,
            max_age_ms: 0,
        }
    }
}

/// The versions of one view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ViewHistory {
    /// The version served; `None` before the first run.
    pub current: Option<u64>,
    /// Versions kept, oldest first; the served one is always among them.
    pub versions: Vec<ViewVersion>,
}

impl ViewHistory {
    /// The version served, if any.
    pub fn current(&self) -> Option<&ViewVersion> {
        let n = self.current?;
        self.get(n)
    }

    /// Version `n`, if it is kept.
    pub fn get(&self, n: u64) -> Option<&ViewVersion> {
        self.versions.iter().find(|v| v.version == n)
    }

    /// Every file a kept version reads (its own and its chain's).
    pub fn files_in_use(&self) -> std::collections::HashSet<&str> {
        self.versions.iter().flat_map(|v| v.files()).collect()
    }

    /// The highest version number ever recorded (numbers are never reused).
    pub fn last_number(&self) -> u64 {
        self.versions.iter().map(|v| v.version).max().unwrap_or(0)
    }

    /// Loads the history of `dir`; a directory from before histories has only
    /// its served version, which becomes a history of one.
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        if let Some(h) = read_json::<Self>(&dir.join(HISTORY))? {
            return Ok(h);
        }
        Ok(match read_json::<ViewVersion>(&dir.join(LEGACY_CURRENT))? {
            Some(v) => Self {
                current: Some(v.version),
                versions: vec![v],
            },
            None => Self::default(),
        })
    }

    /// Durably replaces the history of `dir` with `self`.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(self).expect("history serializes");
        write_atomic(&dir.join(HISTORY), &bytes, "view.current")?;
        // The legacy file, if any, is superseded now; a stale copy is harmless
        // (the history is read first) but would confuse an operator.
        let _ = std::fs::remove_file(dir.join(LEGACY_CURRENT));
        Ok(())
    }

    /// Removes the versions `policy` no longer keeps and returns them (their
    /// files are deleted once the shorter history is saved).
    pub(crate) fn retain(&mut self, policy: VersionPolicy, now_ms: i64) -> Vec<ViewVersion> {
        let keep = policy.keep.max(ALWAYS_KEPT);
        let mut by_age: Vec<u64> = self.versions.iter().map(|v| v.version).collect();
        by_age.sort_unstable_by(|a, b| b.cmp(a));
        let newest: Vec<u64> = by_age.iter().take(ALWAYS_KEPT).copied().collect();
        let within_count: Vec<u64> = by_age.iter().take(keep).copied().collect();
        let current = self.current;
        let (kept, dropped): (Vec<_>, Vec<_>) = self.versions.drain(..).partition(|v| {
            let young = policy.max_age_ms == 0
                || now_ms.saturating_sub(v.refreshed_at_ms) <= policy.max_age_ms as i64;
            Some(v.version) == current
                || newest.contains(&v.version)
                || (within_count.contains(&v.version) && young)
        });
        self.versions = kept;
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: u64, at: i64) -> ViewVersion {
        ViewVersion {
            version: n,
            refreshed_at_ms: at,
            how: RefreshKind::Incremental,
            ..ViewVersion::default()
        }
    }

    fn numbers(h: &ViewHistory) -> Vec<u64> {
        h.versions.iter().map(|v| v.version).collect()
    }

    #[test]
    fn keeps_by_count_and_age_but_never_the_served_version() {
        let mut h = ViewHistory {
            current: Some(2),
            versions: (1..=8).map(|n| version(n, n as i64 * 1000)).collect(),
        };
        let policy = VersionPolicy {
            keep: 4,
            max_age_ms: 0,
        };
        let dropped = h.retain(policy, 9000);
        assert_eq!(numbers(&h), vec![2, 5, 6, 7, 8], "rolled back to 2: kept");
        assert_eq!(dropped.len(), 3);

        let aged = VersionPolicy {
            keep: 10,
            max_age_ms: 2500,
        };
        h.retain(aged, 9000);
        assert_eq!(numbers(&h), vec![2, 7, 8], "6 and older are too old");
        h.current = Some(8);
        h.retain(aged, 1_000_000);
        assert_eq!(
            numbers(&h),
            vec![7, 8],
            "the newest two stay whatever their age"
        );
    }

    #[test]
    fn a_legacy_current_file_becomes_a_history_of_one() {
        let dir = tempfile::tempdir().unwrap();
        let v = version(3, 1);
        std::fs::write(
            dir.path().join(LEGACY_CURRENT),
            serde_json::to_vec(&v).unwrap(),
        )
        .unwrap();
        let h = ViewHistory::load(dir.path()).unwrap();
        assert_eq!(h.current().unwrap(), &v);
        h.save(dir.path()).unwrap();
        assert!(!dir.path().join(LEGACY_CURRENT).exists());
        assert_eq!(ViewHistory::load(dir.path()).unwrap(), h);
    }
}
