"""Streaming figures: sustained ingest, freshness under load, speed-layer memory.

Ingest: N events are produced to a topic first; then a source table is declared
over it and lambdadb consumes the backlog (decode, speed layer, archive to
Parquet) while a client sends 10 queries a second to the table and its view (a
dashboard of 10 panels on a 1-second refresh). The rate is lambdadb's own, not
the producer's.

Freshness: a load process produces events at a fixed rate; a probe produces one
marker event at a time, takes the producer's acknowledgement time, then polls
`SELECT count(*) ... WHERE user_id = <marker>` over the wire until it sees it.
"""

import multiprocessing
import threading
import time

from data import log

STREAM_COLUMNS = """event_time TIMESTAMPTZ NOT NULL, user_id BIGINT NOT NULL, session_id TEXT,
    event_type TEXT NOT NULL, page TEXT, country TEXT, device TEXT, duration_ms INTEGER,
    revenue DOUBLE PRECISION"""


def _declare(server, table, topic):
    with server.connect() as c:
        c.execute(f"CREATE TABLE {table} ({STREAM_COLUMNS}) WITH (topic = '{topic}', "
                  "format = 'json', event_time = 'event_time')")


def _rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def ingest(harness, broker, server, jsonl, events, partitions=3):
    """Consumes a backlog of `events` JSON events; returns figures and samples."""
    src = jsonl.parent / f"ingest-{events}.jsonl"
    if not src.exists():
        with open(jsonl, "rb") as f, open(src, "wb") as out:
            for i, line in enumerate(f):
                if i >= events:
                    break
                out.write(line)
    broker.create_topic("ingest", partitions)
    t = time.time()
    harness.produce(broker.brokers, "ingest", src)
    produce_rate = events / (time.time() - t)
    log(f"ingest: {events:,} events produced at {produce_rate:,.0f}/s; consuming")

    rss0 = _rss_bytes(server.proc.pid)
    samples, queries, stop = [], [0], threading.Event()

    def query_load():
        with server.connect() as c:
            c.execute("SET lambdadb.result_cache = off")
            due = time.perf_counter()
            while not stop.is_set():
                c.execute("SELECT event_type, count(*), sum(revenue) FROM ingest_events GROUP BY 1").fetchall()
                c.execute("SELECT * FROM ingest_hourly ORDER BY hour DESC LIMIT 24").fetchall()
                queries[0] += 2
                due += 0.2
                time.sleep(max(0.0, due - time.perf_counter()))

    t0 = time.time()
    _declare(server, "ingest_events", "ingest")
    with server.connect() as c:
        c.execute("CREATE MATERIALIZED VIEW ingest_hourly AS SELECT date_trunc('hour', event_time) AS hour, "
                  "event_type, count(*) AS n, sum(revenue) AS revenue FROM ingest_events GROUP BY 1, 2")
    loader = threading.Thread(target=query_load, daemon=True)
    loader.start()
    with server.connect() as c:
        consumed = 0
        while consumed < events and time.time() - t0 < 900:
            time.sleep(0.2)
            row = c.execute("SELECT coalesce(sum(consumed_offset), 0), coalesce(max(speed_rows), 0), "
                            "coalesce(max(speed_bytes), 0) FROM lambdadb.sources "
                            "WHERE table_name = 'ingest_events' AND partition >= 0").fetchone()
            consumed = int(row[0])
            samples.append({"t": time.time() - t0, "consumed": consumed, "speed_rows": int(row[1]),
                            "speed_bytes": int(row[2]), "rss": _rss_bytes(server.proc.pid)})
    secs = time.time() - t0
    stop.set()
    loader.join()
    peak = max(samples, key=lambda s: s["speed_rows"])
    per_event = peak["speed_bytes"] / peak["speed_rows"] if peak["speed_rows"] else float("nan")
    rss_peak = max(s["rss"] for s in samples)
    log(f"ingest: {consumed:,} events in {secs:.1f} s = {consumed / secs:,.0f}/s "
        f"({queries[0]} queries meanwhile)")
    return {"events": events, "consumed": consumed, "seconds": secs, "rate": consumed / secs,
            "producer_rate": produce_rate, "queries": queries[0], "samples": samples,
            "speed_bytes_per_event": per_event, "peak_speed_rows": peak["speed_rows"],
            "rss_growth_per_event": (rss_peak - rss0) / max(consumed, 1)}


def _load(brokers, topic, lines, rate, seconds, done):
    """Produces `lines` (cycled) at `rate` events/s for `seconds` (own process)."""
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "compression.type": "lz4"})
    start, sent, i = time.perf_counter(), 0, 0
    while True:
        now = time.perf_counter() - start
        if now >= seconds:
            break
        due = int(now * rate) - sent
        for _ in range(min(due, 20_000)):
            while True:
                try:
                    p.produce(topic, lines[i % len(lines)])
                    break
                except BufferError:
                    p.poll(0.01)
            i += 1
        sent += max(due, 0)
        p.poll(0)
        time.sleep(0.002)
    p.flush(30)
    done.value = sent


def freshness(server, broker, jsonl, rates, seconds, partitions=3):
    """Freshness probes under each load rate: {rate: {...}}."""
    from confluent_kafka import Producer

    broker.create_topic("fresh", partitions)
    _declare(server, "fresh_events", "fresh")
    with open(jsonl, "rb") as f:
        lines = [f.readline() for _ in range(50_000)]
    lines = [x for x in lines if x]
    probe = Producer({"bootstrap.servers": broker.brokers, "linger.ms": 0})
    conn = server.connect()
    conn.execute("SET lambdadb.result_cache = off")
    out, marker = {}, 0
    for rate in rates:
        done = multiprocessing.Value("q", 0)
        loader = multiprocessing.Process(target=_load, args=(broker.brokers, "fresh", lines, rate,
                                                             seconds, done))
        loader.start()
        time.sleep(1.0)  # let the load reach its rate
        t0 = time.perf_counter()
        samples = []
        while time.perf_counter() - t0 < seconds - 2 and loader.is_alive():
            marker += 1
            acked = []
            ev = (f'{{"event_time":"2026-01-01T00:00:00Z","user_id":{-marker},'
                  f'"event_type":"probe"}}').encode()
            probe.produce("fresh", ev, partition=marker % partitions,
                          on_delivery=lambda err, msg: acked.append((err, time.perf_counter())))
            probe.flush(10)
            if not acked or acked[0][0] is not None:
                continue
            t_ack = acked[0][1]
            sql = f"SELECT count(*) FROM fresh_events WHERE user_id = {-marker}"
            while conn.execute(sql).fetchone()[0] == 0:
                if time.perf_counter() - t_ack > 30:
                    break
            samples.append((time.perf_counter() - t0, (time.perf_counter() - t_ack) * 1000))
            time.sleep(0.02)
        loader.join()
        lat = sorted(ms for _, ms in samples)
        pick = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] if lat else float("nan")  # noqa: E731
        out[rate] = {"probes": len(lat), "p50": pick(0.5), "p99": pick(0.99),
                     "max": lat[-1] if lat else float("nan"), "samples": samples,
                     "offered": done.value / seconds}
        log(f"freshness at {rate:,}/s (offered {done.value / seconds:,.0f}/s): "
            f"p50 {out[rate]['p50']:.1f} ms, p99 {out[rate]['p99']:.1f} ms, max {out[rate]['max']:.1f} ms "
            f"over {len(lat)} probes")
    conn.close()
    return out


def refresh_vs_datafusion(server, parquet, runs):
    """REFRESH of the hourly dashboard view over the imported clickstream, and
    DataFusion running the same aggregate on the Parquet file."""
    import statistics

    import datafusion

    # FULL: a recompute from the whole master dataset (a plain REFRESH with
    # nothing new since the last version is incremental and costs ~10 ms).
    with server.connect() as c:
        lam, inc = [], []
        for _ in range(runs):
            t = time.perf_counter()
            c.execute("REFRESH MATERIALIZED VIEW dash_hourly FULL")
            lam.append(time.perf_counter() - t)
            t = time.perf_counter()
            c.execute("REFRESH MATERIALIZED VIEW dash_hourly")
            inc.append(time.perf_counter() - t)
    ctx = datafusion.SessionContext(datafusion.SessionConfig().set("datafusion.execution.time_zone", "UTC"))
    ctx.register_parquet("events", str(parquet))
    sql = ("SELECT date_trunc('hour', event_time) AS hour, event_type, count(*) AS events, "
           "sum(revenue) AS revenue FROM events GROUP BY 1, 2")
    ctx.sql(sql).collect()
    df = []
    for _ in range(runs):
        t = time.perf_counter()
        ctx.sql(sql).collect()
        df.append(time.perf_counter() - t)
    return {"lambdadb": statistics.median(lam), "lambdadb_all": lam,
            "incremental": statistics.median(inc),
            "datafusion": statistics.median(df), "datafusion_all": df}
