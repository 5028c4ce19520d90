"""The engines a suite runs on, behind one small interface: `run(sql)` executes a
query, fetches every row to the client and returns the row count.

- lambdadb: the real server over the wire (psycopg), result cache off, so every
  run computes its answer (the cache is measured on its own).
- DuckDB and DataFusion: in-process over the same Parquet files.
- PostgreSQL 15: a private server loaded with COPY, with the indexes a user adds.
"""

import time

import duckdb
import psycopg

from data import EVENT_COLUMNS, TPCH_TABLES, log


class Wire:
    """A PostgreSQL-protocol server through psycopg (text results, as BI tools
    fetch)."""

    def __init__(self, name, dsn, setup=(), binary=False):
        self.name = name
        self.binary = binary
        self.conn = psycopg.connect(dsn, autocommit=True)
        for s in setup:
            self.conn.execute(s)

    def run(self, sql):
        cur = self.conn.cursor(binary=self.binary).execute(sql)
        return len(cur.fetchall()) if cur.description is not None else 0

    def close(self):
        self.conn.close()


def lambdadb(server):
    return Wire("lambdadb", server.dsn(), ["SET lambdadb.result_cache = off"])


def postgres(pg):
    return Wire("PostgreSQL", pg.dsn())


class DuckDB:
    def __init__(self, tables):
        self.name = "DuckDB"
        self.con = duckdb.connect()
        self.con.execute("SET TimeZone = 'UTC'")
        for name, path in tables.items():
            self.con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path}')")

    def run(self, sql):
        return len(self.con.execute(sql).fetchall())

    def close(self):
        self.con.close()


class DataFusion:
    def __init__(self, tables):
        import datafusion

        self.name = "DataFusion"
        cfg = datafusion.SessionConfig().set("datafusion.execution.time_zone", "UTC")
        self.ctx = datafusion.SessionContext(cfg)
        for name, path in tables.items():
            self.ctx.register_parquet(name, str(path))

    def run(self, sql):
        return sum(b.num_rows for b in self.ctx.sql(sql).collect())

    def close(self):
        pass


def tpch_files(directory):
    return {t: directory / f"{t}.parquet" for t in TPCH_TABLES}


def load_lambdadb_tpch(server, directory, schema_sql):
    """Declares the TPC-H tables and imports tpchgen-cli's files into the master
    dataset, as a user would (COPY ... FROM ... (FORMAT parquet))."""
    t = time.time()
    with server.connect() as c:
        c.execute(schema_sql.read_text())
        for table, path in tpch_files(directory).items():
            c.execute(f"COPY {table} FROM '{path.resolve()}' (FORMAT parquet)")
    secs = time.time() - t
    log(f"lambdadb: TPC-H imported in {secs:.1f} s")
    return secs


def load_lambdadb_events(server, parquet):
    t = time.time()
    with server.connect() as c:
        c.execute(f"COPY events FROM '{parquet.resolve()}' (FORMAT parquet)")
    secs = time.time() - t
    log(f"lambdadb: clickstream imported in {secs:.1f} s")
    return secs


PG_EVENT_TYPES = {"TIMESTAMPTZ": "timestamptz", "BIGINT": "bigint", "VARCHAR": "text",
                  "INTEGER": "integer", "DOUBLE": "double precision"}

# What a user adds for dashboards and lookups: time range scans and per-user
# lookups; event_type and country are low-cardinality, left to the planner.
PG_EVENT_INDEXES = [
    "CREATE INDEX events_time ON events (event_time)",
    "CREATE INDEX events_user ON events (user_id, event_time)",
]


def load_postgres_events(pg, csv_path):
    t = time.time()
    cols = ", ".join(f"{k} {PG_EVENT_TYPES[v]}" for k, v in EVENT_COLUMNS.items())
    with pg.connect() as c:
        c.execute(f"CREATE TABLE events ({cols})")
        with c.cursor().copy("COPY events FROM STDIN (FORMAT csv, HEADER)") as cp:
            with open(csv_path, "rb") as f:
                while chunk := f.read(1 << 20):
                    cp.write(chunk)
        for ix in PG_EVENT_INDEXES:
            c.execute(ix)
        c.execute("VACUUM ANALYZE events")
    secs = time.time() - t
    log(f"PostgreSQL: clickstream loaded (COPY, indexes, VACUUM ANALYZE) in {secs:.1f} s")
    return secs
