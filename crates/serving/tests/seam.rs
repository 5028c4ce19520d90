//! The batch/speed seam under concurrency, in process, against librdkafka's mock
//! cluster: while archive commits and view refreshes move the watermark, every
//! query must still count every consumed event exactly once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::{AsArray, Int64Array};
use datafusion::arrow::datatypes::Int64Type;
use datafusion::prelude::SessionContext;
use lambdadb_common::Config;
use lambdadb_serving::catalog::query_context;
use lambdadb_serving::statement::one_snapshot;
use lambdadb_serving::{Engine, ddl};
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;

/// Runs the catalog statements of `sql` as an admin's session would.
async fn declare(engine: &Arc<Engine>, sql: &str) {
    for stmt in Parser::parse_sql(&PostgreSqlDialect {}, sql).unwrap() {
        let c = ddl::classify(&stmt).expect("a catalog statement").unwrap();
        engine.execute(c).await.unwrap();
    }
}

/// One value, planned and run as the server runs a statement (one snapshot).
async fn scalar(ctx: &SessionContext, sql: &str) -> i64 {
    let batches = match ctx.state().create_logical_plan(sql).await {
        Ok(plan) => one_snapshot(ctx, plan).collect().await,
        Err(e) => Err(e),
    }
    .unwrap_or_else(|e| panic!("{sql} failed: {e}"));
    let batch = batches.into_iter().next().unwrap();
    let col = batch.column(0);
    if let Some(a) = col.as_any().downcast_ref::<Int64Array>() {
        a.value(0)
    } else {
        col.as_primitive::<Int64Type>().value(0)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_counts_each_event_once_while_the_seam_moves() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("clicks", 3, 1).unwrap();
    let brokers = cluster.bootstrap_servers();

    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        archive_interval: Duration::from_secs(3600),
        refresh_interval: Duration::ZERO,
        // Every assertion must read the seam, never a cached answer.
        result_cache_size: "0".into(),
        ..Config::default()
    };
    let engine = Engine::new(config, brokers.clone()).unwrap();
    declare(
        &engine,
        "CREATE TABLE clicks (t TIMESTAMPTZ NOT NULL, k TEXT NOT NULL, v BIGINT) WITH (topic = 'clicks');
         CREATE MATERIALIZED VIEW by_k AS SELECT k, count(*) AS n, sum(v) AS s FROM clicks GROUP BY k;",
    )
    .await;
    let session = query_context(&engine);

    const N: i64 = 6_000;
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .set("compression.type", "lz4")
        .create()
        .unwrap();
    // Two waves: the second arrives after folds, archives and refreshes have
    // moved every boundary once, so the seam between folded speed states,
    // pending events and the archive is crossed with state on both sides.
    for wave in 0..2 {
        for i in wave * N..(wave + 1) * N {
            let payload = if i % 1000 == 999 {
                "garbage".to_string()
            } else {
                format!(
                    r#"{{"t": {}, "k": "k{}", "v": {i}}}"#,
                    1_700_000_000_000i64 + i * 1000,
                    i % 7
                )
            };
            producer
                .send(
                    BaseRecord::<(), String>::to("clicks")
                        .payload(&payload)
                        .partition((i % 3) as i32),
                )
                .unwrap();
            producer.poll(Duration::ZERO);
        }
        producer.flush(Duration::from_secs(30)).unwrap();
        let total = (wave + 1) * N;
        let accepted = total - total / 1000;
        let expected_sum: i64 = (0..total).filter(|i| i % 1000 != 999).sum();

        let deadline = Instant::now() + Duration::from_secs(60);
        while scalar(&session, "SELECT count(*) FROM clicks").await != accepted {
            assert!(Instant::now() < deadline, "not all events consumed in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        // Move the seams repeatedly while querying both tables.
        let mover = {
            let engine = engine.clone();
            tokio::spawn(async move {
                for round in 0..9 {
                    match round % 3 {
                        0 => {
                            engine.view("by_k").unwrap().fold().await.unwrap();
                        }
                        1 => {
                            for s in engine.sources() {
                                s.archive().await.unwrap();
                            }
                        }
                        _ => {
                            engine.refresh("by_k", false).await.unwrap();
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            })
        };
        let mut checks = 0;
        while !mover.is_finished() || checks < 10 {
            assert_eq!(
                scalar(&session, "SELECT count(*) FROM clicks").await,
                accepted
            );
            assert_eq!(
                scalar(&session, "SELECT CAST(sum(n) AS BIGINT) FROM by_k").await,
                accepted
            );
            assert_eq!(
                scalar(&session, "SELECT CAST(sum(s) AS BIGINT) FROM by_k").await,
                expected_sum
            );
            assert_eq!(
                scalar(&session, "SELECT count(*) FROM by_k").await,
                7,
                "each group once"
            );
            checks += 1;
        }
        mover.await.unwrap();
    }
    let rejected = scalar(&session, "SELECT count(*) FROM lambdadb.rejected_messages").await;
    assert_eq!(rejected, 2 * N / 1000);
    let files = engine.source("clicks").unwrap().manifest().files.len();
    assert!(files >= 3, "the archive holds the events ({files} files)");
    engine.stop();
    drop(Arc::clone(&engine));
}
