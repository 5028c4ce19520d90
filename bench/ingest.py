"""Ingest and visibility figures for the first slice (not a test; prints figures).

Starts Tansu and `lambdadb serve`, produces N demo events with `lambdadb produce`,
and reports the producer's rate, the time until `SELECT count(*) FROM events` sees
every event, and the time to answer the demo view.

    .venv/bin/python bench/ingest.py --events 200000 [--bin target/release/lambdadb]
"""

import argparse
import time

from stack import stack


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--partitions", type=int, default=3)
    ap.add_argument("--bin", default=None)
    args = ap.parse_args()
    env = {"LAMBDADB_ARCHIVE_INTERVAL": "5s"}
    with stack(args.bin, args.partitions, env) as (harness, broker, server, tmp):
        path = harness.generate(tmp / "e.jsonl", args.events, seed=1,
                                start="2026-01-01T00:00:00Z", rate=50.0)
        t0 = time.time()
        out = harness.produce(broker.brokers, "events", path)
        t1 = time.time()
        server.wait_count(args.events, timeout=600)
        t2 = time.time()
        q0 = time.time()
        server.query("SELECT * FROM events_hourly ORDER BY hour DESC LIMIT 5")
        q1 = time.time()
        server.query("REFRESH MATERIALIZED VIEW events_hourly")
        q2 = time.time()
        server.query("SELECT * FROM events_hourly ORDER BY hour DESC LIMIT 5")
        q3 = time.time()
        print(f"binary:                      {harness.BIN}")
        print(f"events:                      {args.events} over {args.partitions} partitions")
        print(f"producer:                    {out.strip()}")
        print(f"produce wall time:           {t1 - t0:.2f} s")
        print(f"all visible after start:     {t2 - t0:.2f} s "
              f"({args.events / (t2 - t0):,.0f} events/s end to end)")
        print(f"visible after last ack:      {t2 - t1:.2f} s")
        print(f"view query (speed part):     {1000 * (q1 - q0):.0f} ms")
        print(f"REFRESH (archive + batch):   {1000 * (q2 - q1):.0f} ms")
        print(f"view query (after refresh):  {1000 * (q3 - q2):.0f} ms")


if __name__ == "__main__":
    main()
