"""Turns one run's figures into RESULTS.md, charts/*.png and the summary table."""

from pathlib import Path

from report import bars, cell, fmt_s, freshness_chart, ingest_chart, suite_table, total


def targets(res):
    """(target, measured, goal, met) rows."""
    rows = []
    tp = res["tpch"]
    ok = [q for q, f in tp["lambdadb"].items() if "median" in f and "median" in tp["DataFusion"].get(q, {})]
    r = total(tp["lambdadb"], ok) / total(tp["DataFusion"], ok)
    rows.append((f"TPC-H SF{res['params']['sf']} through the wire vs DataFusion in-process "
                 f"({len(ok)} of 22 queries)", f"{r:.2f}×", "≤ 1.05×", r <= 1.05))
    d = res["dashboard"]
    names = [x["name"] for x in res["dashboard_queries"]]
    r = total(d["lambdadb"], names) / total(d["DuckDB"], names)
    rows.append(("Dashboard suite, raw table, lambdadb total vs DuckDB total", f"{r:.2f}×", "≤ 1.00×", r <= 1.0))
    vnames = [x["name"] for x in res["dashboard_queries"] if x["view"]]
    s = total(d["DuckDB"], vnames) / total(d["lambdadb views"], vnames)
    rows.append((f"Dashboards from materialized views vs DuckDB raw scan ({len(vnames)} panels)",
                 f"{s:.1f}× faster", "≥ 20× faster", s >= 20))
    lg = res["large"]
    r = lg["lambdadb"]["binary"]["median"] / lg["PostgreSQL"]["binary"]["median"]
    rows.append(("1M-row result to psycopg (binary) vs PostgreSQL", f"{r:.2f}×", "≤ 1.00×", r <= 1.0))
    ing = res["ingest"]["rate"]
    rows.append(("Sustained ingest (JSON from Kafka into speed layer + archive, queries running)",
                 f"{ing:,.0f} events/s", "≥ 500,000 events/s", ing >= 500_000))
    fr = res["freshness"]
    rate = 10_000 if 10_000 in fr else max(fr)
    rows.append((f"Freshness p99 at {rate:,} events/s", f"{fr[rate]['p99']:.1f} ms", "≤ 100 ms",
                 fr[rate]["p99"] <= 100))
    return rows


def disagreements(res):
    """Queries whose row counts differ between engines (a wrong answer is not a
    fast one), and queries that failed."""
    out = []
    for suite in ("tpch", "dashboard"):
        queries = {q for e in res[suite].values() for q in e}
        for q in sorted(queries):
            figs = {e: r[q] for e, r in res[suite].items() if q in r}
            errors = [e for e, f in figs.items() if "error" in f]
            rows = {e: f["rows"] for e, f in figs.items() if "rows" in f}
            if errors or len(set(rows.values())) > 1:
                out.append({"suite": suite, "query": q, "rows": rows,
                            "errors": {e: figs[e]["error"] for e in errors}})
    return out


def summary_table(res):
    lines = ["| target | measured | goal | met |", "|---|---|---|---|"]
    for name, got, goal, met in targets(res):
        lines.append(f"| {name} | {got} | {goal} | {'yes' if met else '**no**'} |")
    return "\n".join(lines)


def write_results(res, out):
    out = Path(out)
    charts = out / "charts"
    tq = [f"Q{i}" for i in range(1, 23)]
    bars(charts / "tpch.png", res["tpch"], ["lambdadb", "DataFusion", "DuckDB"], tq,
         f"TPC-H SF{res['params']['sf']}: lambdadb (wire, psycopg) vs DataFusion and DuckDB (in-process)")
    names = [x["name"] for x in res["dashboard_queries"]]
    dash_engines = ["lambdadb", "lambdadb views", "DuckDB", "DataFusion", "PostgreSQL"]
    bars(charts / "dashboard.png", res["dashboard"], dash_engines, names,
         f"Dashboard panels over {res['params']['events']:,} events (log scale)", log=True, horizontal=True)
    freshness_chart(charts / "freshness.png", res["freshness"])
    ingest_chart(charts / "ingest.png", res["ingest"])

    m, v, p = res["machine"], res["versions"], res["params"]
    ing, ref, lg = res["ingest"], res["refresh"], res["large"]
    md = [
        "# lambdadb benchmark results",
        "",
        f"Run of `make bench` on {res['date']}{' (smoke run: tiny data)' if p['smoke'] else ''}; "
        f"the whole run took {res['total_seconds'] / 60:.1f} minutes. Every ratio compares figures "
        "measured in this same run on this machine. Each query ran once to warm up, then "
        f"{p['runs']} times: a figure is the median, ± the spread (max − min) over the median.",
        "",
        "## Targets",
        "",
        summary_table(res),
        "",
        "## Machine and versions",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB memory; {m['os']}",
    ]
    md += [f"- {k}: {val}" for k, val in v.items()]
    md += [
        "- lambdadb is queried over TCP on 127.0.0.1 through psycopg (text results, result cache "
        "off: `SET lambdadb.result_cache = off`); DuckDB and DataFusion run in the benchmark's own "
        "process over the same Parquet files; PostgreSQL is a private server on 127.0.0.1 "
        "(shared_buffers 2GB, work_mem 256MB, 2 parallel workers, JIT off), loaded with COPY, "
        "indexes on (event_time) and (user_id, event_time), then VACUUM ANALYZE.",
        "",
        "## Loading",
        "",
        "| step | time |",
        "|---|---|",
    ]
    md += [f"| {k} | {fmt_s(val)} |" for k, val in res["load"].items()]
    md += [
        "",
        f"## TPC-H, scale factor {p['sf']}",
        "",
        "tpchgen-cli's Parquet files; lambdadb imports them into its master dataset "
        "(`COPY lineitem FROM '…/lineitem.parquet' (FORMAT parquet)`), DataFusion and DuckDB read "
        "them directly. PostgreSQL is not run on TPC-H (its single-node plans for Q17/Q20 take "
        "minutes at SF1, which would not fit the 30-minute run).",
        "",
        "![TPC-H per query](charts/tpch.png)",
        "",
        suite_table(res["tpch"], ["lambdadb", "DataFusion", "DuckDB"], [f"Q{i}" for i in range(1, 23)],
                    ratio_to="DataFusion"),
        "",
        f"## Dashboard suite, {p['events']:,} clickstream events",
        "",
        "Panels of the kind Grafana and Metabase send, over the last 7 days of the data. "
        "`lambdadb views` answers the aggregate panels from materialized views declared for them "
        "(`bench/suites.py`: hourly/daily grain; distinct users and percentiles are the views' "
        "mergeable sketches, so those two panels are approximate there); the raw columns scan the table.",
        "",
        "![Dashboard panels](charts/dashboard.png)",
        "",
        suite_table(res["dashboard"], ["lambdadb", "lambdadb views", "DuckDB", "DataFusion", "PostgreSQL"],
                    names),
        "",
        "## One-million-row result",
        "",
        "`SELECT * FROM events LIMIT 1000000` fetched whole by psycopg (`cursor(binary=True)` and text).",
        "",
        "| engine | binary | text |",
        "|---|---|---|",
    ]
    md += [f"| {e} | {cell(f['binary'])} | {cell(f['text'])} |" for e, f in lg.items()]
    md += [
        "",
        "## Batch refresh",
        "",
        f"`REFRESH MATERIALIZED VIEW dash_hourly FULL` over {p['events']:,} events (archive step, the "
        f"partial aggregate over the master dataset, a new Parquet version, atomic swap): "
        f"{fmt_s(ref['lambdadb'])}; DataFusion running the same aggregate on the Parquet file: "
        f"{fmt_s(ref['datafusion'])} ({ref['lambdadb'] / ref['datafusion']:.2f}×)"
        + (f"; an incremental `REFRESH` with no new events: {fmt_s(ref['incremental'])}."
           if "incremental" in ref else "."),
        "",
        "## Ingest",
        "",
        f"A backlog of {ing['events']:,} JSON events (produced first, at {ing['producer_rate']:,.0f}/s by "
        f"`lambdadb produce`) consumed by a newly declared table with one materialized view, while one "
        f"client sent 10 queries a second to them ({ing['queries']} in all: a full-table aggregate and a "
        f"view query, alternating): {ing['rate']:,.0f} events/s sustained "
        f"({ing['seconds']:.1f} s). Speed-layer memory: {ing['speed_bytes_per_event']:.0f} bytes per "
        f"event (`lambdadb.sources` speed_bytes / speed_rows at the peak of "
        f"{ing['peak_speed_rows']:,} rows); process RSS grew {ing['rss_growth_per_event']:.0f} bytes "
        "per consumed event.",
        "",
        "![Ingest rate](charts/ingest.png)",
        "",
        "## Freshness",
        "",
        "A load process produces events at a fixed rate (confluent-kafka); a probe produces one "
        "marker at a time, waits for the broker's acknowledgement, then polls "
        "`SELECT count(*) … WHERE user_id = <marker>` over the wire until the row is visible.",
        "",
        "| load (events/s) | offered | probes | p50 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for rate, f in res["freshness"].items():
        md.append(f"| {rate:,} | {f['offered']:,.0f} | {f['probes']} | {f['p50']:.1f} ms | "
                  f"{f['p99']:.1f} ms | {f['max']:.1f} ms |")
    md += ["", "![Freshness](charts/freshness.png)", ""]
    bad = disagreements(res)
    md += ["## Answers", ""]
    if not bad:
        md += ["Every engine returned the same number of rows for every query, and no query failed.", ""]
    for b in bad:
        md.append(f"- {b['suite']} {b['query']}: rows {b['rows']}; errors {b['errors']}")
    md.append("")
    notes = out / "ANALYSIS.md"
    if notes.exists() and not p["smoke"]:
        md += [notes.read_text()]
    (out / "RESULTS.md").write_text("\n".join(md) + "\n")
    return "\n" + summary_table(res) + "\n"
