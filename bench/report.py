"""RESULTS.md, the PNG charts, and the summary table printed last."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"lambdadb": "#d62728", "lambdadb views": "#ff9896", "DataFusion": "#1f77b4",
          "DuckDB": "#2ca02c", "PostgreSQL": "#9467bd"}


def total(res, names):
    """Sum of medians over `names`, or None when any is missing or failed."""
    vals = [res.get(n, {}).get("median") for n in names]
    return None if any(v is None for v in vals) else sum(vals)


def fmt_s(v):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"


def cell(fig):
    if fig is None:
        return "–"
    if "error" in fig:
        return "error"
    spread = (fig["max"] - fig["min"]) / fig["median"] * 100 if fig["median"] else 0
    return f"{fmt_s(fig['median'])} ±{spread:.0f}%"


def suite_table(res, engines, queries, ratio_to=None):
    head = ["query"] + engines + ([f"lambdadb / {ratio_to}"] if ratio_to else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for q in queries:
        row = [q] + [cell(res.get(e, {}).get(q)) for e in engines]
        if ratio_to:
            a, b = res["lambdadb"].get(q, {}).get("median"), res[ratio_to].get(q, {}).get("median")
            row.append(f"{a / b:.2f}×" if a and b else "–")
        lines.append("| " + " | ".join(row) + " |")
    row = ["**total**"] + [f"**{fmt_s(total(res[e], queries))}**" for e in engines]
    if ratio_to:
        a, b = total(res["lambdadb"], queries), total(res[ratio_to], queries)
        row.append(f"**{a / b:.2f}×**" if a and b else "–")
    lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def bars(path, res, engines, queries, title, log=False, horizontal=False):
    fig, ax = plt.subplots(figsize=(12, 6 if not horizontal else 0.5 * len(queries) + 2))
    width = 0.8 / len(engines)
    for i, e in enumerate(engines):
        vals = [res.get(e, {}).get(q, {}).get("median", 0) * 1000 for q in queries]
        pos = [j + i * width for j in range(len(queries))]
        (ax.barh if horizontal else ax.bar)(pos, vals, width, label=e, color=COLORS.get(e))
    ticks = [j + width * (len(engines) - 1) / 2 for j in range(len(queries))]
    if horizontal:
        ax.set_yticks(ticks, queries)
        ax.invert_yaxis()
        ax.set_xlabel("median time, ms (lower is better)")
        if log:
            ax.set_xscale("log")
    else:
        ax.set_xticks(ticks, queries)
        ax.set_ylabel("median time, ms (lower is better)")
        if log:
            ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def freshness_chart(path, fresh):
    fig, ax = plt.subplots(figsize=(12, 5))
    for rate, f in fresh.items():
        xs = [t for t, _ in f["samples"]]
        ys = [ms for _, ms in f["samples"]]
        ax.plot(xs, ys, ".", label=f"{rate:,} events/s load: p50 {f['p50']:.0f} ms, p99 {f['p99']:.0f} ms")
    ax.axhline(100, color="gray", linestyle="--", label="target p99 at 10k/s: 100 ms")
    ax.set_yscale("log")
    ax.set_xlabel("seconds into the load")
    ax.set_ylabel("producer ack → visible in SELECT, ms")
    ax.set_title("Freshness over time under produce load")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def ingest_chart(path, ing):
    s = ing["samples"]
    fig, ax = plt.subplots(figsize=(12, 5))
    ts, rates = [], []
    for a, b in zip(s, s[1:]):
        if b["t"] > a["t"]:
            ts.append(b["t"])
            rates.append((b["consumed"] - a["consumed"]) / (b["t"] - a["t"]))
    ax.plot(ts, rates, label="consumed events/s (0.2 s windows)", color=COLORS["lambdadb"])
    ax.axhline(ing["rate"], color="black", linestyle=":", label=f"sustained: {ing['rate']:,.0f}/s")
    ax.axhline(500_000, color="gray", linestyle="--", label="target: 500,000/s")
    ax.set_xlabel("seconds since CREATE TABLE")
    ax.set_ylabel("events per second")
    ax.set_title(f"Ingest of a {ing['events']:,}-event JSON backlog while queries run")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
