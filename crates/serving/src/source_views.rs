//! The speed states of the materialized views over one source, kept under the
//! source's lock beside its rows: attaching a definition, folding, swapping in
//! a batch version, and cutting the whole state for one statement. Every
//! change names the definition (`owner`) it is for, so a replaced
//! definition's late fold or version never lands in its successor's state.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use lambdadb_batch::{IMPORT_PARTITION, TableStore, ViewVersion};

use super::{Inner, SourceCut, SourceState, now_ms};
use crate::viewspeed::{ViewInput, ViewSpeed};

impl SourceState {
    /// Starts keeping the speed state of view `name`, served from `version`.
    /// `owner` identifies the view's definition (a `ViewState`): a replaced
    /// definition's folds and versions are refused from then on.
    pub fn attach_view(&self, name: &str, owner: u64, version: Option<Arc<ViewVersion>>) {
        let mut inner = self.inner.write().expect("source lock");
        let mut speed = ViewSpeed::at_version(version);
        speed.owner = owner;
        inner.views.insert(name.to_string(), speed);
    }

    /// Stops keeping view `name`'s speed state (dropped, or now over another
    /// source), unless another definition (`owner`) took the name since.
    pub fn detach_view(&self, name: &str, owner: u64) {
        let mut inner = self.inner.write().expect("source lock");
        if inner.views.get(name).is_some_and(|v| v.owner == owner) {
            inner.views.remove(name);
        }
    }

    /// A copy of view `name`'s speed state, if definition `owner` is attached.
    pub fn view_speed(&self, name: &str, owner: u64) -> Option<ViewSpeed> {
        let inner = self.inner.read().expect("source lock");
        inner.views.get(name).filter(|v| v.owner == owner).cloned()
    }

    /// View `name`'s speed state and every event above what it folded, cut at
    /// one consumed position; `None` unless definition `owner` is attached.
    pub fn view_input(&self, name: &str, owner: u64) -> Option<ViewInput> {
        let inner = self.inner.read().expect("source lock");
        let speed = inner.views.get(name).filter(|v| v.owner == owner)?.clone();
        Some(Self::input_of(&inner, self.store(), speed))
    }

    fn input_of(inner: &Inner, store: &TableStore, speed: ViewSpeed) -> ViewInput {
        let (files, rows) = if speed.from_files {
            // `folded` is a manifest boundary at or below the manifest's watermark:
            // archive files from it, then the speed table from the manifest on.
            (
                inner
                    .manifest
                    .files_from(&speed.folded)
                    .map(|f| store.table_file(f))
                    .collect(),
                inner.speed.rows_from(&inner.manifest.watermark),
            )
        } else {
            // Imported files above the fold come from files: imports never pass
            // through the speed table.
            let imports = inner
                .manifest
                .partition_files_from(IMPORT_PARTITION, speed.folded.next(IMPORT_PARTITION))
                .map(|f| store.table_file(f))
                .collect();
            (imports, inner.speed.rows_from(&speed.folded))
        };
        let mut consumed = inner.speed.consumed();
        let imported = inner.manifest.watermark.next(IMPORT_PARTITION);
        if imported > 0 {
            consumed.advance(IMPORT_PARTITION, imported);
        }
        ViewInput {
            speed,
            files,
            rows,
            consumed,
            sequence: inner.speed.sequence(),
        }
    }

    /// Installs a fold of view `name` computed from `input`: `segments` hold the
    /// partial states of every event below `input.consumed`. Callers hold
    /// `fold_lock`, so nothing else changed the view's state since `input`;
    /// a fold of a replaced definition (another owner) is dropped.
    pub fn install_fold(&self, name: &str, input: &ViewInput, segments: Vec<RecordBatch>) {
        let mut inner = self.inner.write().expect("source lock");
        if let Some(v) = inner
            .views
            .get_mut(name)
            .filter(|v| v.owner == input.speed.owner)
        {
            v.segments = segments;
            v.folded = input.consumed.clone();
            v.from_files = false;
            v.folded_at_ms = now_ms();
            v.folded_events += input.pending_rows() as u64;
        }
    }

    /// Serves `version` for view `name` from now on, with nothing folded above
    /// it, if definition `owner` is still the one attached. Callers hold `fold_lock`.
    pub fn swap_version(&self, name: &str, owner: u64, version: Arc<ViewVersion>) -> bool {
        let mut inner = self.inner.write().expect("source lock");
        match inner.views.get_mut(name).filter(|v| v.owner == owner) {
            Some(v) => {
                *v = ViewSpeed::at_version(Some(version));
                v.owner = owner;
                true
            }
            None => false,
        }
    }

    /// The source's snapshot and every view's input, under one read of the lock.
    pub fn cut(&self) -> SourceCut {
        let inner = self.inner.read().expect("source lock");
        let snapshot = Self::snapshot_of(&inner);
        let views = inner
            .views
            .iter()
            .map(|(name, speed)| {
                (
                    name.clone(),
                    Self::input_of(&inner, self.store(), speed.clone()),
                )
            })
            .collect();
        SourceCut { snapshot, views }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::speedbudget::SpeedBudget;
    use arrow::datatypes::{DataType, Field, Schema};
    use lambdadb_common::Watermark;

    async fn source(dir: &std::path::Path) -> SourceState {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, true)]));
        let spec = lambdadb_common::SourceSpec {
            name: "s".into(),
            topic: "s".into(),
            format: "json".into(),
            schema,
            event_time: None,
            definition: String::new(),
            retention: None,
        };
        let master = lambdadb_batch::MasterLocation::Local(dir.to_path_buf());
        SourceState::open(
            spec,
            &master,
            Arc::new(crate::writer::WriteGate::Local),
            lambdadb_batch::LogPolicy::default(),
            10,
            Arc::new(SpeedBudget::new(0)),
        )
        .await
        .unwrap()
    }

    /// Issue 13: a fold computed for a definition that was replaced meanwhile
    /// must not land in the new definition's state (before, folds looked views
    /// up by name only).
    #[tokio::test]
    async fn a_replaced_definition_never_receives_its_predecessors_rows() {
        let dir = tempfile::tempdir().unwrap();
        let s = source(dir.path()).await;
        s.attach_view("v", 1, None);
        let old_input = s.view_input("v", 1).unwrap();
        s.attach_view("v", 2, None); // CREATE OR REPLACE
        let stale = RecordBatch::new_empty(Arc::new(Schema::new(vec![Field::new(
            "x",
            DataType::Int64,
            true,
        )])));
        s.install_fold("v", &old_input, vec![stale]);
        let now = s.view_speed("v", 2).unwrap();
        assert!(
            now.segments.is_empty(),
            "the old definition's fold was dropped"
        );
        assert!(
            s.view_input("v", 1).is_none(),
            "the old definition reads nothing"
        );
        let version = Arc::new(ViewVersion {
            version: 9,
            watermark: Watermark::new(),
            ..ViewVersion::default()
        });
        assert!(!s.swap_version("v", 1, version.clone()), "nor its version");
        assert!(s.swap_version("v", 2, version));
        s.detach_view("v", 1);
        assert!(
            s.view_speed("v", 2).is_some(),
            "detaching the old keeps the new"
        );
    }
}
