"""Extreme values of every type reach the client as PostgreSQL values or as an
error with a SQLSTATE (22008 for datetimes beyond what can be sent), over the
simple and the extended protocol, in text and in binary, and the connection
stays usable after each."""

import psycopg
import pytest

# (expression, SQLSTATE when it cannot be sent, or None)
CASES = [
    ("arrow_cast(2147483647, 'Date32')", "22008"),
    ("arrow_cast(-2147483648, 'Date32')", "22008"),
    ("arrow_cast(9223372036854775807, 'Timestamp(Microsecond, None)')", "22008"),
    ("arrow_cast(-9223372036854775807, 'Timestamp(Microsecond, Some(\"UTC\"))')", "22008"),
    ("arrow_cast(9223372036854775807, 'Timestamp(Nanosecond, None)')", None),
    ("arrow_cast(0, 'Date32')", None),
    ("'NaN'::float8", None),
    ("'Infinity'::float8", None),
    ("'-Infinity'::float4", None),
    ("-0.0::float8", None),
    ("1.7976931348623157e308::float8", None),
    ("99999999999999999999999999999999999999::numeric(38,0)", None),
    ("-0.00000000000000000000000000000000000001::numeric(38,38)", None),
    ("decode('ff00fe', 'hex')", None),
    ("arrow_cast(9223372036854775807, 'Duration(Microsecond)')", None),
    ("arrow_cast(18446744073709551615, 'UInt64')", None),
    ("arrow_cast(-9223372036854775808, 'Int64')", None),
    ("arrow_cast(2147483647, 'Time32(Second)')", None),
    ("interval '178000000 years'", None),
    ("make_array(arrow_cast(-2147483648, 'Int32'), NULL)", None),
    ("repeat('é', 100000)", None),
]


def run(conn, sql, binary):
    with conn.cursor(binary=binary) as cur:
        try:
            cur.execute(sql)
            cur.fetchall()
            return None
        except psycopg.Error as e:
            return e.sqlstate


@pytest.mark.parametrize("mode", ["simple-text", "extended-text", "extended-binary"])
def test_extreme_values(broker, make_server, mode):
    broker.create_topic("events", 1)
    server = make_server(broker.brokers)
    kw = {"cursor_factory": psycopg.ClientCursor} if mode == "simple-text" else {}
    with psycopg.connect(server.dsn(), autocommit=True, **kw) as c:
        for expr, expected in CASES:
            got = run(c, f"SELECT {expr} AS v", binary=mode == "extended-binary")
            if expected is not None:
                assert got == expected, (expr, got)
            else:
                # A value, or an error with a class a client can act on: never
                # a dropped connection (an internal error XX000 is a bug here).
                assert got is None or not got.startswith("XX"), (expr, got)
            assert c.execute("SELECT 1").fetchone() == (1,), expr
    # psql reads text over the simple protocol.
    out = server.psql("SELECT arrow_cast(0, 'Date32'), 'NaN'::float8, decode('ff00', 'hex')")
    assert out == "1970-01-01|NaN|\\xff00", out
