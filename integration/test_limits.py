"""Limits a reader cannot lift: the server's statement_timeout and
max_result_size are ceilings (COPY counts too), functions cannot be made to
build unbounded values, and a session acts only as the user who logged in."""

import psycopg
import pytest

from accounts import write_config


def code_of(conn, sql, params=None):
    try:
        conn.execute(sql, params)
        return None
    except psycopg.Error as e:
        return e.sqlstate


def test_a_reader_cannot_lift_limits(broker, make_server, tmp_path):
    broker.create_topic("events", 1)
    config = write_config(tmp_path, users=(("reader", "r", "reader"), ("boss", "b", "admin")),
                          extra=['statement_timeout = "5s"', 'max_result_size = "1MB"'])
    server = make_server(broker.brokers, config=config)
    with psycopg.connect(server.dsn(user="reader", password="r"), autocommit=True) as c:
        assert c.execute("SHOW statement_timeout").fetchone() == ("5000",)
        refused = [
            "SET statement_timeout = '10s'",
            "SET statement_timeout = 0",
            "SELECT set_config('statement_timeout', '0', false)",
            "SET lambdadb.max_result_size = '2MB'",
            "SET lambdadb.max_result_size = 0",
            "SET SESSION AUTHORIZATION boss",
            "SET session_authorization = 'boss'",
            "SELECT set_config('session_authorization', 'boss', false)",
            "SET ROLE boss",
        ]
        for sql in refused:
            assert code_of(c, sql) == "42501", sql
        # Lowering is the reader's right; so is being oneself.
        for sql in ["SET statement_timeout = '1s'", "SET lambdadb.max_result_size = '512kB'",
                    "SET ROLE NONE", "SET ROLE reader", "SET SESSION AUTHORIZATION DEFAULT",
                    "RESET session_authorization", "RESET ALL"]:
            assert code_of(c, sql) is None, sql
        assert c.execute("SELECT current_user").fetchone() == ("reader",)
        # There is no setting for the memory limits at all.
        assert code_of(c, "SET query_memory_limit = '100GB'") == "42704"

        # The result limit covers COPY TO STDOUT too: the copy stops near 1 MB of
        # its 5 MB. (pgwire 0.42 reports an error in the middle of a COPY with a
        # CopyFail message, which clients take for a protocol error rather than
        # 54000; so this runs on a connection of its own.)
        received = 0
        with pytest.raises(psycopg.Error):
            with psycopg.connect(server.dsn(user="reader", password="r"), autocommit=True) as cc:
                with cc.cursor().copy("COPY (SELECT repeat('x', 100) FROM generate_series(1, 50000)) "
                                      "TO STDOUT") as copy:
                    for chunk in copy:
                        received += len(chunk)
        assert 0 < received <= 2 << 20, received

        # Size arguments cannot allocate without limit (54000), as literals or
        # as values computed per row.
        for sql in ["SELECT repeat('x', 2000000000)",
                    "SELECT repeat('ab', n) FROM (VALUES (600000000)) t(n)",
                    "SELECT lpad('', 1500000000)",
                    "SELECT rpad('a', n, 'b') FROM (VALUES (1500000000)) t(n)",
                    "SELECT array_repeat(1, 1000000000)",
                    "SELECT range(1, 10000000000)",
                    "SELECT approx_percentile_cont(v, 0.5, 1000000000) "
                    "FROM (VALUES (1.0), (2.0)) t(v)"]:
            assert code_of(c, sql) == "54000", sql
        # Small ones still work.
        assert c.execute("SELECT length(repeat('ab', 3))").fetchone() == (6,)
        assert c.execute("SELECT cardinality(range(1, 11))").fetchone() == (10,)
        assert c.execute("SELECT 1").fetchone() == (1,)

    # An admin may raise them.
    with psycopg.connect(server.dsn(user="boss", password="b"), autocommit=True) as c:
        assert code_of(c, "SET statement_timeout = '10s'") is None
        assert code_of(c, "SET lambdadb.max_result_size = '2MB'") is None


def test_memory_limit_bounds_every_session_together(broker, make_server, tmp_path):
    # Each statement may use 1 GB, but the server as a whole only 32 MB: the
    # server-wide pool is what refuses a statement that stays within its own.
    broker.create_topic("events", 1)
    server = make_server(broker.brokers, env={"LAMBDADB_QUERY_MEMORY_LIMIT": "1GB",
                                              "LAMBDADB_MEMORY_LIMIT": "32MB"})
    with server.connect() as c:
        with pytest.raises(psycopg.Error) as e:
            # generate_series is sorted, and a sorted GROUP BY streams: scramble it.
            c.execute("SELECT count(DISTINCT v % 3000000) FROM generate_series(1, 5000000) t(v)"
                      ).fetchall()
        assert e.value.sqlstate == "53200", e.value
        assert "memory_limit of the whole server" in str(e.value), e.value
        assert c.execute("SELECT count(*) FROM generate_series(1, 1000) t(v)").fetchone() == (1000,)
