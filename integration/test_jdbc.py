"""pgJDBC (Debian's libpostgresql-jdbc-java on Java 17), the driver Metabase and
DBeaver sync through: every DatabaseMetaData call they make, a PreparedStatement
past the driver's prepareThreshold (server-side statement), getObject on every
column and fetch-size paging, run against lambdadb and PostgreSQL 15 holding the
same rows; the outputs must agree but for the documented differences."""

import subprocess
from pathlib import Path

CLIENT = Path(__file__).parent / "jdbc" / "JdbcClient.java"
JAR = "/usr/share/java/postgresql.jar"


def run_client(port):
    out = subprocess.run(
        ["java", "-Duser.timezone=UTC", "-cp", JAR, str(CLIENT),
         f"jdbc:postgresql://127.0.0.1:{port}/lambdadb"],
        capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.splitlines()


def normalize_lambdadb(lines):
    # Documented: lambdadb has one more schema, `lambdadb`, holding its system tables.
    assert "getSchemas\tlambdadb" in lines
    lines = [l for l in lines if l != "getSchemas\tlambdadb"]
    return [l.replace("getSchemas.count\t4", "getSchemas.count\t3") for l in lines]


def normalize_postgres(lines):
    # Documented: materialized views are served as views (relkind 'v').
    return [l.replace("\tMATERIALIZED VIEW", "\tVIEW") for l in lines]


def test_jdbc_same_as_postgres(pg_pair):
    server, pg = pg_pair
    got = normalize_lambdadb(run_client(server.port))
    want = normalize_postgres(run_client(pg.port))
    # The client prints every fact it checks; a sanity check that it got far.
    sections = {l.split("\t")[0] for l in got}
    assert {"getColumns", "getTypeInfo", "prepared", "getObject", "fetchSize",
            "getPrimaryKeys.count", "getIndexInfo.count", "getImportedKeys.count"} <= sections
    assert not [l for l in got if ".error" in l.split("\t")[0]], got
    # getTables orders by type, which the normalization changes: compare as sets
    # of lines (each line names what it describes).
    assert sorted(got) == sorted(want), "\n".join(
        [f"lambdadb only: {l}" for l in sorted(set(got) - set(want))]
        + [f"PostgreSQL only: {l}" for l in sorted(set(want) - set(got))])
    assert "fetchSize\t3000\t" in "\n".join(got)
    assert sum(1 for l in got if l.startswith("prepared\t")) == 8
