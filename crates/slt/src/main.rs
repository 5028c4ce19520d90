//! `lambdadb-slt CONNINFO FILE...`: runs sqllogictest files against a running
//! lambdadb over the Postgres wire protocol (simple query, text results), the way
//! psql would send them. `integration/test_sqllogictest.py` starts the broker and
//! the server and runs every file under `sql/tests/`.
//!
//! Values print as PostgreSQL's text format; NULL prints as `NULL` and the empty
//! string as `(empty)`. Errors read `SQLSTATE: message`, so a record can check the
//! code (`statement error 0A000: .*approx_distinct`).

use std::fmt;
use std::process::ExitCode;

use sqllogictest::{AsyncDB, DBOutput, DefaultColumnType, Runner};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

#[derive(Debug)]
struct SqlError(String);

impl fmt::Display for SqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

impl From<tokio_postgres::Error> for SqlError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) => SqlError(format!("{}: {}", db.code().code(), db.message())),
            None => SqlError(e.to_string()),
        }
    }
}

struct Lambdadb {
    client: Client,
}

#[async_trait::async_trait]
impl AsyncDB for Lambdadb {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let messages = self.client.simple_query(sql).await?;
        let mut rows = Vec::new();
        let mut columns = None;
        let mut affected = 0;
        for m in messages {
            match m {
                SimpleQueryMessage::RowDescription(cols) => columns = Some(cols.len()),
                SimpleQueryMessage::Row(row) => {
                    columns = Some(row.len());
                    rows.push(
                        (0..row.len())
                            .map(|i| match row.get(i) {
                                None => "NULL".to_string(),
                                Some("") => "(empty)".to_string(),
                                Some(v) => v.to_string(),
                            })
                            .collect(),
                    );
                }
                SimpleQueryMessage::CommandComplete(n) => affected = n,
                _ => {}
            }
        }
        Ok(match columns {
            Some(n) => DBOutput::Rows {
                types: vec![DefaultColumnType::Any; n],
                rows,
            },
            None => DBOutput::StatementComplete(affected),
        })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "lambdadb"
    }

    async fn sleep(dur: std::time::Duration) {
        tokio::time::sleep(dur).await
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((conninfo, files)) = args.split_first().filter(|(_, f)| !f.is_empty()) else {
        eprintln!(
            "usage: lambdadb-slt CONNINFO FILE...   (CONNINFO: 'host=127.0.0.1 port=5433 user=lambdadb')"
        );
        return ExitCode::from(2);
    };
    let mut failed = 0;
    for file in files {
        let conninfo = conninfo.clone();
        let mut runner = Runner::new(move || {
            let conninfo = conninfo.clone();
            async move {
                let (client, connection) = tokio_postgres::connect(&conninfo, NoTls).await?;
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        eprintln!("connection error: {e}");
                    }
                });
                Ok(Lambdadb { client })
            }
        });
        // The simple protocol carries no types: check the column count only.
        runner.with_column_validator(|actual, expected| actual.len() == expected.len());
        match runner.run_file_async(file).await {
            Ok(()) => println!("ok      {file}"),
            Err(e) => {
                failed += 1;
                println!("FAILED  {file}\n{}", e.display(true));
            }
        }
    }
    if failed > 0 {
        println!("{failed} of {} files failed", files.len());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
