//! A DataFusion table over an explicit list of Parquet files.
//!
//! The files come from a commit (a Delta add action, a view version), which
//! already knows their sizes and row counts. The scan is planned from that
//! alone: no listing and no `HEAD` per file per query (a `ListingTable` over
//! explicit paths asks the store about every file at every scan: one request
//! per file on S3, and the cost that made a table of many files slower to
//! count than a table of few), and `count(*)` over the files is answered from
//! the known row counts without opening them.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::Statistics;
use datafusion::common::stats::Precision;
use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingTableUrl, PartitionedFile};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::cache::cache_manager::{CachedFileMetadata, FileStatisticsCache};
use datafusion::execution::cache::{SchemaFingerprint, TableScopedPath};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion_datasource::compute_all_files_statistics;

/// One Parquet file a commit lists: where it is, its size, and its rows when
/// the commit recorded them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableFile {
    /// Absolute path on local disk or an `s3://` URL whose store the reading
    /// runtime has registered.
    pub location: String,
    /// Its size in bytes, as committed.
    pub bytes: u64,
    /// Its rows, if known (exact: the writer counted them).
    pub rows: Option<u64>,
}

impl TableFile {
    /// A file whose size is known and whose row count is not.
    pub fn sized(location: String, bytes: u64) -> Self {
        Self {
            location,
            bytes,
            rows: None,
        }
    }
}

/// A table reading exactly `files`, never a directory listing: a file that no
/// commit lists must stay invisible.
pub fn files_table(schema: SchemaRef, files: Vec<TableFile>) -> Result<Arc<dyn TableProvider>> {
    let mut parsed = Vec::with_capacity(files.len());
    for f in files {
        let url = ListingTableUrl::parse(&f.location)?;
        parsed.push((url, f));
    }
    if let Some((first, _)) = parsed.first() {
        let store = first.object_store();
        if let Some((other, _)) = parsed.iter().find(|(u, _)| u.object_store() != store) {
            return Err(DataFusionError::Internal(format!(
                "one scan over two stores: {} and {}",
                first.as_str(),
                other.as_str()
            )));
        }
    }
    Ok(Arc::new(FilesTable {
        fingerprint: Arc::new(SchemaFingerprint::from_schema(&schema)),
        schema,
        files: parsed,
    }))
}

#[derive(Debug)]
struct FilesTable {
    schema: SchemaRef,
    /// Identifies `schema` to the statistics cache (statistics are typed by it).
    fingerprint: Arc<SchemaFingerprint>,
    files: Vec<(ListingTableUrl, TableFile)>,
}

impl FilesTable {
    /// Exact row counts where every file has one; sizes as an estimate.
    fn statistics(&self) -> Statistics {
        let rows: Option<u64> = self.files.iter().map(|(_, f)| f.rows).sum();
        let bytes: u64 = self.files.iter().map(|(_, f)| f.bytes).sum();
        Statistics {
            num_rows: rows.map_or(Precision::Absent, |r| Precision::Exact(r as usize)),
            total_byte_size: Precision::Inexact(bytes as usize),
            column_statistics: Statistics::unknown_column(&self.schema),
        }
    }
}

impl FilesTable {
    /// The file's statistics from its footer (read through DataFusion's
    /// footer cache), kept in the runtime's statistics cache.
    async fn column_statistics(
        &self,
        state: &dyn Session,
        store: &Arc<dyn object_store::ObjectStore>,
        cache: Option<&FileStatisticsCache>,
        meta: &object_store::ObjectMeta,
    ) -> Result<Arc<Statistics>> {
        let key = TableScopedPath {
            table: None,
            path: meta.location.clone(),
        };
        if let Some(hit) = cache.and_then(|c| c.get(&key))
            && hit.is_valid_for(meta, &self.fingerprint)
        {
            return Ok(hit.statistics.clone());
        }
        let found = ParquetFormat::default()
            .infer_stats_and_ordering(state, store, self.schema.clone(), meta)
            .await?;
        let stats = Arc::new(found.statistics);
        if let Some(c) = cache {
            c.put(
                &key,
                CachedFileMetadata::new(
                    meta.clone(),
                    self.fingerprint.clone(),
                    stats.clone(),
                    None,
                ),
            );
        }
        Ok(stats)
    }
}

fn file_statistics(schema: &SchemaRef, f: &TableFile) -> Statistics {
    Statistics {
        num_rows: f
            .rows
            .map_or(Precision::Absent, |r| Precision::Exact(r as usize)),
        total_byte_size: Precision::Inexact(f.bytes as usize),
        column_statistics: Statistics::unknown_column(schema),
    }
}

#[async_trait]
impl TableProvider for FilesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // The physical optimizer pushes them into the Parquet scan for row
        // group and page pruning; they are applied again above it.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let Some((first, _)) = self.files.first() else {
            let schema = match projection {
                Some(p) => Arc::new(self.schema.project(p)?),
                None => self.schema.clone(),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        };
        // The size and the fixed modification time identify a file to
        // DataFusion's footer and statistics caches: committed files are never
        // rewritten in place (names carry their offset range, compaction
        // writes new names, and a file no commit lists is never read).
        let format = ParquetFormat::default();
        let collect = state.config().collect_statistics();
        let store = state.runtime_env().object_store(first.object_store())?;
        let cache = state.runtime_env().cache_manager.get_file_statistic_cache();
        let mut parts: Vec<PartitionedFile> = Vec::with_capacity(self.files.len());
        for (url, f) in &self.files {
            let part = PartitionedFile::new(url.prefix().as_ref(), f.bytes);
            // Column statistics (min, max, nulls) from the footer, as a
            // ListingTable collects them: join order and filter selectivity
            // are planned from them (TPC-H Q18 took 1.8x as long without).
            let stats = if collect {
                self.column_statistics(state, &store, cache.as_deref(), &part.object_meta)
                    .await?
            } else {
                Arc::new(file_statistics(&self.schema, f))
            };
            parts.push(part.with_statistics(stats));
        }
        let groups = FileGroup::new(parts).split_files(state.config().target_partitions());
        let (groups, statistics) =
            compute_all_files_statistics(groups, self.schema.clone(), collect, false)?;
        let statistics = match collect {
            true => statistics,
            false => self.statistics(),
        };
        let source = format.file_source(self.schema.clone().into());
        let config = FileScanConfigBuilder::new(first.object_store(), source)
            .with_file_groups(groups)
            .with_statistics(statistics)
            .with_projection_indices(projection.cloned())?
            .with_limit(limit)
            .build();
        format.create_physical_plan(state, config).await
    }
}
