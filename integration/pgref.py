"""A real PostgreSQL 15 (Debian's postgresql-15) as the reference the same client
scripts are compared against: started on a free loopback port in a temporary
directory, loaded with the same definitions and rows as lambdadb, and stopped by
its owner."""

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg

from harness import ROOT, free_port, wait_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _as_postgres_user():
    """initdb and postgres refuse to run as root; run them as the `postgres`
    account the Debian package creates."""
    if os.geteuid() != 0:
        return []
    return ["runuser", "-u", "postgres", "--"]


class Postgres:
    def __init__(self, extra_opts=""):
        self.extra_opts = extra_opts
        # Its own directory under /tmp: pytest's temporary directories are private
        # to root, and the server runs as `postgres`.
        self.dir = Path(tempfile.mkdtemp(prefix="lambdadb-pg-"))
        self.data = self.dir / "pgdata"
        self.sock = self.dir / "sock"
        self.sock.mkdir(exist_ok=True)
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        if os.geteuid() == 0:
            pw = pwd.getpwnam("postgres")
            for p in (self.dir, self.sock):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        self.started = False

    def start(self):
        run = _as_postgres_user()
        subprocess.run(run + [str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "lambdadb",
                              "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"],
                       check=True, capture_output=True, text=True)
        # Same session defaults lambdadb reports: UTC, ISO dates.
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.sock} "
                "-c timezone=UTC -c fsync=off -c full_page_writes=off " + self.extra_opts)
        subprocess.run(run + [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                              "-o", opts, "-w", "start"], check=True, capture_output=True, text=True)
        self.started = True
        wait_port(self.port)
        with psycopg.connect(self.dsn(dbname="postgres"), autocommit=True) as c:
            c.execute("CREATE DATABASE lambdadb")
        return self

    def stop(self):
        if self.started:
            subprocess.run(_as_postgres_user() + [str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                                                  "-m", "fast", "-w", "stop"],
                           capture_output=True, text=True)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)

    def dsn(self, **kw):
        parts = {"host": "127.0.0.1", "port": self.port, "user": "lambdadb", "dbname": "lambdadb"}
        parts.update(kw)
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def connect(self, **kw):
        return psycopg.connect(self.dsn(), autocommit=True, **kw)

    def load_demo(self, events):
        """The definitions of `sql/` (the `WITH (topic ...)` clause removed) and
        the rows of `events`."""
        cols = _source_columns()
        with self.connect() as c:
            for ddl in _definitions():
                c.execute(ddl)
            names = ", ".join(n for n, _ in cols)
            with c.cursor().copy(f"COPY events ({names}) FROM STDIN") as cp:
                for e in events:
                    cp.write_row([e.get(n) for n, _ in cols])
            c.execute("REFRESH MATERIALIZED VIEW events_hourly")
            c.execute("ANALYZE")


def _sql_files():
    return sorted((ROOT / "sql").glob("*.sql"))


def _definitions():
    """Each statement of `sql/`, as PostgreSQL takes it."""
    out = []
    for f in _sql_files():
        text = "\n".join(l for l in f.read_text().splitlines() if not l.strip().startswith("--"))
        for stmt in text.split(";"):
            stmt = stmt.strip()
            if not stmt:
                continue
            if stmt.upper().startswith("CREATE TABLE"):
                stmt = re.sub(r"\s*WITH\s*\(.*\)\s*$", "", stmt, flags=re.S)
            out.append(stmt)
    return out


def _source_columns():
    """(name, type) of the demo source's declared columns, from sql/."""
    ddl = next(d for d in _definitions() if d.upper().startswith("CREATE TABLE"))
    body = ddl[ddl.index("(") + 1:]
    cols = []
    for line in body.splitlines():
        line = line.strip().rstrip(",").rstrip(")")
        m = re.match(r"(\w+)\s+(.+)", line)
        if m:
            cols.append((m.group(1), m.group(2)))
    return cols
