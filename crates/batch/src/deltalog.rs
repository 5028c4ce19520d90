//! The master dataset's transaction log: one Delta Lake table per source.
//!
//! Every archive run, import, compaction or retention pass is one Delta
//! commit, atomic by the store's create-if-absent (a rename-free conditional
//! put on S3, a hard link on local disk). What lambdadb needs beyond the file
//! list rides in the commit itself, so the table alone restores the state:
//!
//! - each file's Kafka partition, offset range, rows, event-time bounds and
//!   import identity are `add.tags` (`lambdadb.*`), which checkpoints keep;
//! - the offset vector is a set of Delta application transactions (`txn`,
//!   made for idempotent streaming writers): `lambdadb.wm.<p>` holds the next
//!   offset of partition `p`, `lambdadb.fp.<p>` and `lambdadb.fpo.<p>` the
//!   payload hash and offset of its last archived message (the restart
//!   check), and `lambdadb.partitions` one past
//!   the highest partition ever committed, so they can be enumerated;
//! - the commit info repeats the watermark for people reading the history.
//!
//! Readers outside lambdadb (Spark, Trino, DuckDB `delta_scan`, Python
//! `deltalake`, polars) see an ordinary append-only table with the columns
//! of the source plus `_partition` and `_offset`.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, Add, Remove, StructType, Transaction};
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
};
use deltalake::operations::create::CreateBuilder;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::{DeltaTable, DeltaTableBuilder, TableProperty};
use lambdadb_common::{Fingerprint, PartitionId};
use tracing::info;
use url::Url;

use crate::IMPORT_PARTITION;
use crate::manifest::{ArchiveFile, ImportedFrom, Manifest};
use crate::store::TableStore;
use crate::{BatchError, Result, now_ms};

const TAG: &str = "lambdadb.";
const PARTITIONS_TXN: &str = "lambdadb.partitions";
/// The writer lease's epoch (see `crate::lease`), carried by every commit of
/// a writer on a shared store: a commit racing a later epoch's conflicts
/// with it and fails (delta-rs refuses a commit whose application
/// transactions a concurrent winning commit also set).
const WRITER_TXN: &str = "lambdadb.writer";

/// One source's Delta table, loaded.
pub struct DeltaLog {
    table: DeltaTable,
    store: TableStore,
    /// The lease epoch this process writes in, once it took the table over.
    writer: Option<i64>,
}

impl std::fmt::Debug for DeltaLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeltaLog({})", self.store.url)
    }
}

/// The table at `store`, not loaded yet.
fn unloaded(store: &TableStore) -> Result<DeltaTable> {
    DeltaTableBuilder::from_url(store.url.clone())
        .map_err(delta_err)?
        .with_storage_backend(store.store.clone(), store.url.clone())
        .build()
        .map_err(delta_err)
}

/// A failure inside delta-rs, as a batch error.
pub(crate) fn delta_err(e: deltalake::DeltaTableError) -> BatchError {
    BatchError::Delta(e.to_string())
}

impl DeltaLog {
    /// Loads the table at `store` (creating it, empty or from `legacy` — the
    /// state of a pre-Delta `manifest.json` whose files stay where they are)
    /// and returns the state it records.
    pub async fn open(
        store: TableStore,
        name: &str,
        schema: &SchemaRef,
        legacy: Option<Manifest>,
    ) -> Result<(Self, Manifest)> {
        register_s3_log_store();
        let mut table = unloaded(&store)?;
        if table
            .verify_deltatable_existence()
            .await
            .map_err(delta_err)?
        {
            table.load().await.map_err(delta_err)?;
            if !store.follower {
                table = bring_properties_up_to_date(table, &store).await?;
            }
        } else {
            let kernel: StructType = schema
                .as_ref()
                .try_into_kernel()
                .map_err(|e| BatchError::Delta(format!("the table's schema: {e}")))?;
            let mut create = CreateBuilder::new()
                .with_log_store(table.log_store())
                .with_table_name(name)
                .with_columns(kernel.fields().cloned())
                .with_save_mode(SaveMode::Ignore)
                // A checkpoint every 10 commits keeps opening the table as cheap
                // after a year as after a day: each of the ~3 txn lookups per
                // partition replays the commits since the last checkpoint (with
                // 100, a table at version 496 opened 2.6x slower than a fresh
                // one in bench/age.py).
                .with_configuration_property(TableProperty::CheckpointInterval, Some("10"))
                .with_configuration(
                    store
                        .log_policy
                        .properties()
                        .map(|(k, v)| (k.to_string(), Some(v))),
                );
            if let Some(m) = &legacy {
                let adds = m
                    .files
                    .iter()
                    .map(|f| Action::Add(add_action(f)))
                    .collect::<Vec<_>>();
                create = create.with_actions(adds).with_commit_properties(properties(
                    &Manifest::default(),
                    m,
                    None,
                ));
                info!(
                    table = name,
                    files = m.files.len(),
                    "moving the master dataset from manifest.json to a Delta table (the files stay)"
                );
            }
            table = match create.await {
                Ok(t) => t,
                // Another process of a shared store created it meanwhile (the
                // create is conditional): open theirs.
                Err(e) if store.follower || store.local_dir().is_none() => {
                    let mut again = unloaded(&store)?;
                    if !again
                        .verify_deltatable_existence()
                        .await
                        .map_err(delta_err)?
                    {
                        return Err(delta_err(e));
                    }
                    again.load().await.map_err(delta_err)?;
                    again
                }
                Err(e) => return Err(delta_err(e)),
            };
        }
        let log = Self {
            table,
            store,
            writer: None,
        };
        let manifest = log.read().await?;
        Ok((log, manifest))
    }

    /// Loads what other processes committed since; the new state if the
    /// table is past version `installed` (the state the caller serves: after a
    /// failed commit the loaded table may be ahead of it).
    pub async fn follow(&mut self, installed: u64) -> Result<Option<Manifest>> {
        self.table.update_state().await.map_err(delta_err)?;
        if self.table.version().unwrap_or(0) <= installed {
            return Ok(None);
        }
        Ok(Some(self.read().await?))
    }

    /// Makes this process the table's writer in lease epoch `epoch`: loads
    /// the latest state and commits the epoch alone (a STREAMING UPDATE with
    /// no files), so that any commit a previous holder still has in flight
    /// conflicts with it and fails; every later commit carries the epoch too.
    /// Returns the state to continue from.
    pub async fn take_over(&mut self, epoch: i64) -> Result<Manifest> {
        self.table.update_state().await.map_err(delta_err)?;
        self.table = bring_properties_up_to_date(self.table.clone(), &self.store).await?;
        self.store.set_commit_point("lease.manifest");
        let result = CommitBuilder::from(
            CommitProperties::default()
                .with_application_transactions(vec![Transaction::new(WRITER_TXN, epoch)]),
        )
        .with_actions(Vec::new())
        .build(
            Some(self.table.snapshot().map_err(delta_err)?),
            self.table.log_store(),
            DeltaOperation::StreamingUpdate {
                output_mode: deltalake::protocol::OutputMode::Append,
                query_id: WRITER_TXN.to_string(),
                epoch_id: epoch,
            },
        )
        .await;
        self.store.set_commit_point("archive.manifest");
        match result {
            Ok(done) => self.table.state = Some(done.snapshot()),
            Err(e) => {
                self.table.update_state().await.map_err(delta_err)?;
                return Err(delta_err(e));
            }
        }
        self.writer = Some(epoch);
        self.read().await
    }

    /// Stops writing in the lease epoch taken over (the lease was lost).
    pub fn step_down(&mut self) {
        self.writer = None;
    }

    /// The state the loaded snapshot records.
    async fn read(&self) -> Result<Manifest> {
        let snapshot = self.table.snapshot().map_err(delta_err)?;
        let mut files = Vec::new();
        for view in snapshot.log_data().iter() {
            #[allow(deprecated)] // the only public accessor of an add's tags
            let add = view.add_action();
            files.push(file_of(&add)?);
        }
        files.sort_by_key(|f| (f.partition, f.first_offset));
        let log_store = self.table.log_store();
        let txn = |app: String| {
            let log_store = log_store.clone();
            async move {
                snapshot
                    .transaction_version(log_store.as_ref(), app)
                    .await
                    .map_err(delta_err)
            }
        };
        let mut manifest = Manifest {
            version: self.table.version().unwrap_or(0),
            files,
            ..Manifest::default()
        };
        let partitions = txn(PARTITIONS_TXN.to_string()).await?.unwrap_or(0);
        for p in (0..partitions as PartitionId).chain([IMPORT_PARTITION]) {
            let Some(next) = txn(format!("{TAG}wm.{p}")).await? else {
                continue;
            };
            manifest.watermark.advance(p, next);
            if let (Some(hash), Some(offset)) = (
                txn(format!("{TAG}fp.{p}")).await?,
                txn(format!("{TAG}fpo.{p}")).await?,
            ) {
                manifest.fingerprints.insert(
                    p,
                    Fingerprint {
                        offset,
                        hash: hash as u64,
                    },
                );
            }
        }
        Ok(manifest)
    }

    /// Commits the change from `current` to `next` (files added and removed,
    /// the watermark and fingerprints of every partition that moved) as one
    /// Delta commit. `point` names the commit's fault points. After an error
    /// the table is reloaded: if the commit landed anyway (its post-commit
    /// checkpoint failed, say), that counts as success.
    pub async fn commit(
        &mut self,
        current: &Manifest,
        next: &Manifest,
        operation: DeltaOperation,
        point: &'static str,
    ) -> Result<Manifest> {
        let old: std::collections::HashSet<&str> =
            current.files.iter().map(|f| f.path.as_str()).collect();
        let new: std::collections::HashSet<&str> =
            next.files.iter().map(|f| f.path.as_str()).collect();
        let now = now_ms();
        // A rewrite of the same rows (OPTIMIZE) changes no data: streaming
        // readers of the table skip it.
        let data_change = !matches!(operation, DeltaOperation::Optimize { .. });
        let mut actions: Vec<Action> = next
            .files
            .iter()
            .filter(|f| !old.contains(f.path.as_str()))
            .map(|f| {
                let mut add = add_action(f);
                add.data_change = data_change;
                Action::Add(add)
            })
            .collect();
        actions.extend(
            current
                .files
                .iter()
                .filter(|f| !new.contains(f.path.as_str()))
                .map(|f| {
                    Action::Remove(Remove {
                        path: f.path.clone(),
                        data_change,
                        deletion_timestamp: Some(now),
                        extended_file_metadata: Some(true),
                        partition_values: Some(HashMap::new()),
                        size: Some(f.bytes as i64),
                        tags: Some(tags(f)),
                        deletion_vector: None,
                        base_row_id: None,
                        default_row_commit_version: None,
                    })
                }),
        );
        lambdadb_common::failpoint::hit(&format!("{point}.begin"))
            .map_err(|e| BatchError::Delta(e.to_string()))?;
        self.store.set_commit_point(point);
        let result = CommitBuilder::from(properties(current, next, self.writer))
            .with_actions(actions)
            .build(
                Some(self.table.snapshot().map_err(delta_err)?),
                self.table.log_store(),
                operation,
            )
            .await;
        self.store.set_commit_point("archive.manifest");
        match result {
            Ok(done) => {
                self.table.state = Some(done.snapshot());
            }
            Err(e) => {
                let e = delta_err(e);
                self.table.update_state().await.map_err(delta_err)?;
                let landed = self.read().await?;
                let paths = |m: &Manifest| {
                    m.files
                        .iter()
                        .map(|f| f.path.clone())
                        .collect::<std::collections::BTreeSet<_>>()
                };
                if landed.watermark != next.watermark || paths(&landed) != paths(next) {
                    return Err(e);
                }
                tracing::warn!(table = %self.store.url, "the commit landed although delta-rs reported an error after it: {e}");
            }
        }
        let mut committed = next.clone();
        committed.version = self.table.version().unwrap_or(0);
        Ok(committed)
    }
}

/// Sets the table properties of `store.log_policy` on a table created with
/// other values (by an earlier release, or with another `vacuum_grace`): one
/// metadata commit, only when something differs.
async fn bring_properties_up_to_date(table: DeltaTable, store: &TableStore) -> Result<DeltaTable> {
    let config = table
        .snapshot()
        .map_err(delta_err)?
        .metadata()
        .configuration()
        .clone();
    let wanted: HashMap<String, String> = store
        .log_policy
        .properties()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .filter(|(k, v)| config.get(k) != Some(v))
        .collect();
    if wanted.is_empty() {
        return Ok(table);
    }
    info!(table = %store.url, properties = ?wanted, "updating the table's log retention properties");
    table
        .set_tbl_properties()
        .with_properties(wanted)
        .await
        .map_err(delta_err)
}

/// The txns and commit info recording `next`'s offsets (only partitions that
/// moved since `current`: a txn keeps its last value until it is set again).
fn properties(current: &Manifest, next: &Manifest, writer: Option<i64>) -> CommitProperties {
    let mut txns = Vec::new();
    if let Some(epoch) = writer {
        txns.push(Transaction::new(WRITER_TXN, epoch));
    }
    let mut highest = -1;
    for (p, offset) in next.watermark.partitions() {
        highest = highest.max(p);
        if current.watermark.next(p) != offset {
            txns.push(Transaction::new(format!("{TAG}wm.{p}"), offset));
        }
        if let Some(fp) = next.fingerprints.get(&p)
            && current.fingerprints.get(&p) != Some(fp)
        {
            txns.push(Transaction::new(format!("{TAG}fp.{p}"), fp.hash as i64));
            txns.push(Transaction::new(format!("{TAG}fpo.{p}"), fp.offset));
        }
    }
    let before = current
        .watermark
        .partitions()
        .map(|(p, _)| p)
        .max()
        .unwrap_or(-1);
    if highest > before || current.version == 0 {
        txns.push(Transaction::new(PARTITIONS_TXN, i64::from(highest + 1)));
    }
    CommitProperties::default()
        .with_application_transactions(txns)
        .with_metadata([(
            "lambdadb.watermark".to_string(),
            serde_json::Value::String(next.watermark.to_string()),
        )])
}

fn tags(f: &ArchiveFile) -> HashMap<String, Option<String>> {
    let mut t: Vec<(&str, String)> = vec![
        ("partition", f.partition.to_string()),
        ("first_offset", f.first_offset.to_string()),
        ("next_offset", f.next_offset.to_string()),
        ("rows", f.rows.to_string()),
    ];
    if let Some((lo, hi)) = f.event_time_ms {
        t.push(("min_event_time_ms", lo.to_string()));
        t.push(("max_event_time_ms", hi.to_string()));
    }
    if let Some(i) = &f.imported_from {
        t.push(("imported_name", i.name.clone()));
        t.push(("imported_hash", i.hash.clone()));
        t.push(("imported_size", i.size.to_string()));
    }
    t.into_iter()
        .map(|(k, v)| (format!("{TAG}{k}"), Some(v)))
        .collect()
}

fn add_action(f: &ArchiveFile) -> Add {
    let stats = serde_json::json!({
        "numRecords": f.rows,
        "minValues": {"_partition": f.partition, "_offset": f.first_offset},
        "maxValues": {"_partition": f.partition, "_offset": (f.next_offset - 1).max(f.first_offset)},
        "nullCount": {"_partition": 0, "_offset": 0},
    });
    Add {
        path: f.path.clone(),
        partition_values: HashMap::new(),
        size: f.bytes as i64,
        modification_time: now_ms(),
        data_change: true,
        stats: Some(stats.to_string()),
        tags: Some(tags(f)),
        ..Default::default()
    }
}

fn file_of(add: &Add) -> Result<ArchiveFile> {
    let tags = add.tags.clone().unwrap_or_default();
    let get = |k: &str| {
        tags.get(&format!("{TAG}{k}"))
            .cloned()
            .flatten()
            .ok_or_else(|| {
                BatchError::Delta(format!(
                    "file {} of the master dataset has no tag {TAG}{k}: it was not written by lambdadb, which cannot serve a table another writer changed",
                    add.path
                ))
            })
    };
    let num = |k: &str| -> Result<i64> {
        get(k)?.parse().map_err(|_| {
            BatchError::Delta(format!("file {}: tag {TAG}{k} is not a number", add.path))
        })
    };
    let time = match (num("min_event_time_ms"), num("max_event_time_ms")) {
        (Ok(lo), Ok(hi)) => Some((lo, hi)),
        _ => None,
    };
    let imported_from = match get("imported_hash") {
        Ok(hash) => Some(ImportedFrom {
            name: get("imported_name")?,
            hash,
            size: num("imported_size")? as u64,
        }),
        Err(_) => None,
    };
    Ok(ArchiveFile {
        path: add.path.clone(),
        partition: num("partition")? as PartitionId,
        first_offset: num("first_offset")?,
        next_offset: num("next_offset")?,
        rows: num("rows")? as u64,
        bytes: add.size as u64,
        imported_from,
        event_time_ms: time,
    })
}

/// delta-rs knows log stores for `file://` and `memory://` only (S3's comes
/// with deltalake-aws and the AWS SDK); ours is its default one, atomic by
/// conditional put, which the start-up check verifies.
fn register_s3_log_store() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        logstore_factories().insert(
            Url::parse("s3://").expect("a scheme URL"),
            Arc::new(ConditionalPutLogStore),
        );
    });
}

struct ConditionalPutLogStore;

impl LogStoreFactory for ConditionalPutLogStore {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}
