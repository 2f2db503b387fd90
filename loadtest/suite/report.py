"""The suite's report: README.md (tables, each figure's ratio to the bare Granian ceiling of
the same run), results.json and eight PNG plots, from the results dict alone (no load, no
stack), so tests/test_perf_suite.py renders them from a tiny synthetic result set."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")  # headless: no display on the bench machine or in CI
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator, NullFormatter

PLOTS: Final = (
    ("pt01_throughput.png", "PT-01: concurrency vs throughput, saturation point"),
    ("pt02_sync_vs_async.png", "PT-02: sync vs async throughput and end-to-end latency"),
    ("pt03_scaling.png", "PT-03: scaling efficiency vs ideal linear"),
    ("event_latency_lag.png", "Event latency breakdown and consumer lag"),
    ("resources_heatmap.png", "Resource use per process and phase"),
    ("latency_percentiles.png", "Latency percentile distribution"),
    ("pt05_burst.png", "PT-05: burst response with queue depth"),
    ("pt04_partitions.png", "PT-04: throughput vs partitions, partition balance"),
)
PT04_CONSUMERS_LABEL: Final = "2 consumers in one group"  # phases.PT04_CONSUMERS
SATURATION: Final = 0.95  # the lowest concurrency reaching this share of the best throughput


# --- machine ----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
    except (OSError, StopIteration):
        kb = 0
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "ram_gib": round(kb / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


# --- derived figures (pure) -------------------------------------------------------------------


def saturation(by_level: Mapping[str, Mapping[str, Any]]) -> int | None:
    """The lowest concurrency whose throughput is within 5% of the best one."""
    if not by_level:
        return None
    best = max(r["rps"] for r in by_level.values())
    for level in sorted(by_level, key=int):
        if by_level[level]["rps"] >= SATURATION * best:
            return int(level)
    return None


def ceiling_at(results: Mapping[str, Any], conns: int) -> float | None:
    """The bare ceiling measured at the concurrency nearest ``conns``."""
    c = results.get("ceiling") or {}
    if not c:
        return None
    level = min(c, key=lambda k: abs(int(k) - conns))
    return float(c[level]["rps"])


def ratio(value: float | None, ceil: float | None) -> str:
    if value is None or not ceil:
        return "n/a"
    return f"{value / ceil:.2f}"


def efficiency(by_n: Mapping[str, Mapping[str, Any]], key: str) -> dict[str, float | None]:
    """Throughput at n / (n x throughput at the smallest n): 1.0 is linear scaling."""
    if not by_n:
        return {}
    first = min(by_n, key=int)
    base = by_n[first].get(key)
    out: dict[str, float | None] = {}
    for n, r in by_n.items():
        v = r.get(key)
        out[n] = v / (base * int(n) / int(first)) if v is not None and base else None
    return out


def balance(messages_by_partition: Mapping[str, int]) -> float | None:
    """Busiest partition's messages over the mean: 1.0 is perfectly even."""
    counts = list(messages_by_partition.values())
    if not counts or not sum(counts):
        return None
    return max(counts) / statistics.mean(counts)


def recovery_s(
    history: Sequence[Mapping[str, float]], stages: Sequence[Sequence[int]]
) -> float | None:
    """Seconds from the end of the burst (the first sample after the last one with the
    burst's users) until the p95 latency is back within 1.5x of the first stage's (its
    samples at full users, the first two left out) with no failures, two samples in a row;
    None if it never is. Stage times come from the users Locust reports, not the clock:
    Locust starts its history before its workers have spawned anyone."""
    if len(stages) < 3 or not history:
        return None
    first, peak = stages[0][0], stages[1][0]
    at_peak = [i for i, h in enumerate(history) if h.get("users", 0) >= 0.9 * peak]
    if not at_peak or at_peak[-1] + 1 >= len(history):
        return None
    before = [
        h["p95"]
        for h in history[: at_peak[0]]
        if h.get("users") == first and not math.isnan(h["p95"])
    ][2:]
    if not before:
        return None
    limit = 1.5 * statistics.median(before)
    burst_end = history[at_peak[-1] + 1]["t"]
    calm = 0
    for h in history[at_peak[-1] + 1 :]:
        ok = not math.isnan(h["p95"]) and h["p95"] <= limit and not h["fails_per_s"]
        calm = calm + 1 if ok else 0
        if calm == 2:
            return max(0.0, h["t"] - 1 - burst_end)
    return None


def error_rate(history: Sequence[Mapping[str, float]]) -> float | None:
    reqs = sum(h["rps"] for h in history if not math.isnan(h["rps"]))
    fails = sum(h["fails_per_s"] for h in history if not math.isnan(h["fails_per_s"]))
    return fails / reqs if reqs else None


def resource_table(results: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """phase label -> part -> {cpu_cores, rss_mb}, over every measured phase."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, r in (results.get("pt01") or {}).items():
        top = max(r, key=int)
        out[f"PT-01 {name} @{top}"] = r[top].get("resources", {})
    for path in ("sync", "async"):
        r = (results.get("pt02") or {}).get(path)
        if r:
            out[f"PT-02 {path}"] = r.get("resources", {})
    for k, r in ((results.get("pt03") or {}).get("edge") or {}).items():
        out[f"PT-03 edge x{k}"] = r.get("resources", {})
    for k, r in ((results.get("pt03") or {}).get("instances") or {}).items():
        out[f"PT-03 orders x{k}"] = r.get("resources", {})
    for k, r in (results.get("pt04") or {}).items():
        out[f"PT-04 {k} partitions"] = r.get("resources", {})
    for key, label in (("pt05", "PT-05 burst"), ("mix", "shopper mix")):
        if results.get(key):
            out[label] = results[key].get("resources", {})
    return out


# --- plots --------------------------------------------------------------------------------------


def _rel(series: Sequence[Sequence[Any]], t0: float) -> tuple[list[float], list[float]]:
    xs = [float(p[0]) - t0 for p in series if p[1] is not None]
    ys = [float(p[1]) for p in series if p[1] is not None]
    return xs, ys


def _empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no data: {what}", ha="center", va="center", transform=ax.transAxes)


def plot_pt01(res: Mapping[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    ceil = res.get("ceiling") or {}
    if ceil:
        lv = sorted(ceil, key=int)
        ax.plot([int(x) for x in lv], [ceil[x]["rps"] for x in lv], "k--", label="bare Granian")
    for name, by in (res.get("pt01") or {}).items():
        lv = sorted(by, key=int)
        (line,) = ax.plot([int(x) for x in lv], [by[x]["rps"] for x in lv], "o-", label=name)
        sat = saturation(by)
        if sat is not None:
            ax.plot([sat], [by[str(sat)]["rps"]], "*", ms=16, color=line.get_color())
    if not res.get("pt01"):
        _empty(ax, "PT-01")
    ax.set_xscale("log")
    used = {int(lv) for by in (res.get("pt01") or {}).values() for lv in by}
    levels = sorted(used | set(map(int, ceil)))
    if levels:
        ax.set_xticks(levels, [str(lv) for lv in levels])
        ax.xaxis.set_minor_formatter(NullFormatter())
    # log: the database-bound reads sit two orders of magnitude under the ceiling
    ax.set_yscale("log")
    ax.set_xlabel("connections (wrk, closed loop)")
    ax.set_ylabel("requests/s (log)")
    ax.set_title("PT-01 throughput by concurrency (star: saturation, 95% of best)")
    _legend(ax)
    _save(fig, path)


def plot_pt02(res: Mapping[str, Any], path: Path) -> None:
    fig, (bars, lines) = plt.subplots(1, 2, figsize=(12, 5))
    pt = res.get("pt02") or {}
    paths = [p for p in ("sync", "async") if pt.get(p)]
    if paths:
        width = 0.38
        xs = range(len(paths))
        bars.bar(
            [x - width / 2 for x in xs], [pt[p]["rps"] for p in paths], width, label="requests/s"
        )
        bars.bar(
            [x + width / 2 for x in xs],
            [pt[p].get("orders_per_s") or 0 for p in paths],
            width,
            label="order rows/s (end to end)",
        )
        how = {"sync": "sync (write in the request)", "async": "async (outbox → Kafka)"}
        bars.set_xticks(list(xs), [how[p] for p in paths])
        _legend(bars)
        bars.set_ylabel("per second")
        for p in paths:
            series = (pt[p].get("latency") or {}).get("series") or []
            if series:
                t0 = pt[p].get("t0", series[0][0])
                xs2, ys = _rel(series, t0)
                lines.plot(xs2, ys, ".-", label=f"{p}: purchase sent → order row")
        lines.set_yscale("log")
        lines.set_xlabel("s into the phase")
        lines.set_ylabel("ms")
        _legend(lines)
    else:
        _empty(bars, "PT-02")
    conns = (pt.get("async") or pt.get("sync") or {}).get("connections", "?")
    bars.set_title(f"PT-02 throughput at {conns} connections")
    lines.set_title("end-to-end latency of sampled purchases")
    _save(fig, path)


def plot_pt03(res: Mapping[str, Any], path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    pt = res.get("pt03") or {}
    for ax, key, metric, label in (
        (axes[0], "edge", "rps", "edge workers (GET /products/{id})"),
        (axes[1], "instances", "events_per_s", "orders service instances (one group)"),
    ):
        by = pt.get(key) or {}
        ns = sorted(by, key=int)
        vals = [by[n].get(metric) for n in ns]
        if not ns or vals[0] is None:
            _empty(ax, label)
            continue
        first = int(ns[0])
        ideal = [vals[0] * int(n) / first for n in ns]
        ax.plot([int(n) for n in ns], vals, "o-", label="measured")
        ax.plot([int(n) for n in ns], ideal, "k--", label="ideal linear")
        eff = efficiency(by, metric)
        for n, v in zip(ns, vals, strict=True):
            e = eff.get(n)
            if v is not None and e is not None:
                ax.annotate(f"{e:.0%}", (int(n), v), textcoords="offset points", xytext=(4, 6))
        cores = res.get("machine", {}).get("cores") or 2
        ax.axvline(cores, color="red", lw=1, ls=":", label=f"{cores} cores")
        ax.set_xticks([int(n) for n in ns])
        ax.set_ylim(bottom=0)
        ax.set_xlabel(label)
        ax.set_ylabel("requests/s" if metric == "rps" else "events/s")
        _legend(ax)
    fig.suptitle("PT-03 horizontal scaling (labels: efficiency vs linear)")
    _save(fig, path)


def plot_events(res: Mapping[str, Any], path: Path) -> None:
    fig, (brk, lag) = plt.subplots(1, 2, figsize=(12, 5))
    a = (res.get("pt02") or {}).get("async") or {}
    breakdown = (a.get("latency") or {}).get("breakdown_ms") or {}
    if breakdown:
        bottom = [0.0, 0.0]
        for stage, s in breakdown.items():
            vals = [s.get("p50", 0.0), s.get("p99", 0.0)]
            brk.bar(["p50", "p99"], vals, bottom=bottom, label=stage)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        brk.set_ylabel("ms (each stage's own percentile, stacked)")
        _legend(brk)
    else:
        _empty(brk, "event timestamps")
    brk.set_title("PT-02 async: purchase → order row, by stage")
    drawn = False
    queues = a.get("queues") or {}
    if queues.get("lag"):
        xs, ys = _rel(queues["lag"], a.get("t0", queues["lag"][0][0]))
        lag.plot(xs, ys, label="PT-02 orders group lag (orders.v1)")
        drawn = True
    for parts, r in (res.get("pt04") or {}).items():
        if r.get("lag"):
            xs, ys = _rel(r["lag"], r.get("t0", r["lag"][0][0]))
            lag.plot(xs, ys, label=f"PT-04 {parts} partitions")
            drawn = True
    if drawn:
        lag.set_xlabel("s into the phase")
        lag.set_ylabel("messages behind")
        _legend(lag)
    else:
        _empty(lag, "consumer lag")
    lag.set_title("consumer lag over time")
    _save(fig, path)


def plot_resources(res: Mapping[str, Any], path: Path) -> None:
    table = resource_table(res)
    phases = list(table)
    parts = sorted({p for row in table.values() for p in row})
    fig, axes = plt.subplots(1, 2, figsize=(16, max(4, 0.45 * len(parts) + 2)))
    if not phases or not parts:
        _empty(axes[0], "resources")
        _save(fig, path)
        return
    for ax, key, title, fmt in (
        (axes[0], "cpu_cores", "CPU (cores busy, mean)", "{:.2f}"),
        (axes[1], "rss_mb", "memory (RSS MiB, peak)", "{:.0f}"),
    ):
        grid = [[table[ph].get(p, {}).get(key, 0.0) for ph in phases] for p in parts]
        im = ax.imshow(grid, aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(phases)), phases, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(len(parts)), parts, fontsize=8)
        top = max((v for row in grid for v in row), default=0.0) or 1.0
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(j, i, fmt.format(v), ha="center", va="center", fontsize=6,
                        color="white" if v < top / 2 else "black")  # fmt: skip
        fig.colorbar(im, ax=ax)
        ax.set_title(title)
    _save(fig, path)


def plot_percentiles(res: Mapping[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(8, 5))
    drawn = False

    def draw(label: str, r: Mapping[str, Any], style: str) -> None:
        nonlocal drawn
        pcts = r.get("percentiles_ms") or {}
        if pcts:
            qs = sorted(pcts, key=float)
            # x: "nines" (1 / (1 - q)), so 99, 99.9 and 99.99 are evenly spaced
            xs = [1 / (1 - min(float(q), 99.999) / 100) for q in qs]
            ax.plot(xs, [pcts[q] for q in qs], style, label=label)
            drawn = True

    ceil = res.get("ceiling") or {}
    for name, by in (res.get("pt01") or {}).items():
        top = max(by, key=int)
        draw(f"{name} @{top}", by[top], "o-")
    if ceil:
        top = max(ceil, key=int)
        draw(f"bare Granian @{top}", ceil[top], "k--")
    for p in ("sync", "async"):
        r = (res.get("pt02") or {}).get(p)
        if r:
            draw(f"PT-02 {p} purchase @{r.get('connections')}", r, "s:")
    if drawn:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [2, 4, 10, 20, 100, 1000, 10000, 100000]
        ax.set_xticks(ticks, ["50", "75", "90", "95", "99", "99.9", "99.99", "max"])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency ms")
        _legend(ax, fontsize=7)
    else:
        _empty(ax, "percentiles")
    ax.set_title("Latency percentile distribution (wrk, highest concurrency)")
    _save(fig, path)


def plot_burst(res: Mapping[str, Any], path: Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 8), sharex=True)
    r = res.get("pt05") or {}
    hist = r.get("history") or []
    if not hist:
        _empty(top, "PT-05")
        _save(fig, path)
        return
    t0 = float(r.get("t0") or hist[0]["t"])  # the phase's start: queues and history alike
    xs = [h["t"] - t0 for h in hist]
    top.plot(xs, [h["rps"] for h in hist], label="requests/s")
    top.plot(xs, [h["fails_per_s"] for h in hist], label="failures/s", color="red")
    users = top.twinx()
    users.plot(xs, [h["users"] for h in hist], "k:", label="users")
    users.set_ylabel("users")
    top.set_ylabel("per second")
    _legend(top, loc="upper left")
    bottom.plot(xs, [h["p50"] for h in hist], label="p50 ms")
    bottom.plot(xs, [h["p95"] for h in hist], label="p95 ms")
    bottom.set_yscale("log")
    bottom.set_ylabel("latency ms (2 s window)")
    bottom.set_xlabel("s into the run")
    queues = r.get("queues") or {}
    q = bottom.twinx()
    for name, style in (("outbox", "g--"), ("lag", "m--")):
        if queues.get(name):
            qx, qy = _rel(queues[name], t0)
            label = {"outbox": "outbox entries", "lag": "Kafka lag (orders)"}[name]
            q.plot(qx, qy, style, label=label)
    q.set_ylabel("queue depth")
    lines, labels = bottom.get_legend_handles_labels()
    qlines, qlabels = q.get_legend_handles_labels()
    bottom.legend(lines + qlines, labels + qlabels, loc="upper left")
    rec = recovery_s(hist, r.get("stages") or [])
    fig.suptitle(
        "PT-05 burst "
        + " → ".join(str(u) for u, _ in r.get("stages") or [])
        + f" users; recovery {_f(rec, '{:.1f} s') if rec is not None else 'not reached'}"
    )
    _save(fig, path)


def plot_pt04(res: Mapping[str, Any], path: Path) -> None:
    fig, (tp, bal) = plt.subplots(1, 2, figsize=(12, 5))
    pt = res.get("pt04") or {}
    ps = sorted(pt, key=int)
    if not ps:
        _empty(tp, "PT-04")
        _save(fig, path)
        return
    tp.plot([int(p) for p in ps], [pt[p].get("events_per_s") or 0 for p in ps], "o-",
            label="order rows/s (10-90% of the run)")  # fmt: skip
    lat = tp.twinx()
    lat.plot([int(p) for p in ps], [pt[p].get("latency_ms", {}).get("p99", 0) for p in ps], "rs--",
             label="p99 produce → row ms")  # fmt: skip
    lat.set_ylabel("ms")
    tp.set_ylim(bottom=0)
    lat.set_ylim(bottom=0)
    tp.set_xticks([int(p) for p in ps])
    tp.set_xlabel("partitions")
    tp.set_ylabel("events/s")
    l1, n1 = tp.get_legend_handles_labels()
    l2, n2 = lat.get_legend_handles_labels()
    tp.legend(l1 + l2, n1 + n2, loc="upper left")
    tp.set_title(f"throughput and latency ({PT04_CONSUMERS_LABEL})")
    width = 0.8 / len(ps)
    for i, p in enumerate(ps):
        counts = pt[p].get("messages_by_partition") or {}
        if not counts:
            continue
        total = sum(counts.values()) or 1
        keys = sorted(counts, key=int)
        bal.bar([int(k) + i * width for k in keys], [counts[k] / total for k in keys], width,
                label=f"{p} partitions (max/mean {balance(counts) or 0:.2f})")  # fmt: skip
    bal.xaxis.set_major_locator(MaxNLocator(integer=True))
    bal.set_xlabel("partition")
    bal.set_ylabel("share of messages")
    _legend(bal, fontsize=7)
    bal.set_title("partition balance (ShardPartitioner)")
    _save(fig, path)


def _legend(ax: Axes, **kw: Any) -> None:
    if ax.get_legend_handles_labels()[0]:  # matplotlib warns about an empty legend
        ax.legend(**kw)


def _save(fig: Any, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


PLOTTERS: Final = (
    plot_pt01,
    plot_pt02,
    plot_pt03,
    plot_events,
    plot_resources,
    plot_percentiles,
    plot_burst,
    plot_pt04,
)


# --- markdown ---------------------------------------------------------------------------------


def _f(v: Any, fmt: str = "{:,.0f}") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return fmt.format(v)


def markdown(res: Mapping[str, Any]) -> str:
    m = res.get("machine") or {}
    lines = [
        f"# Performance suite run {res.get('run', '')}",
        "",
        f"- date: {res.get('date')} (profile `{res.get('profile')}`)",
        f"- command: `{res.get('command')}`",
        f"- machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('ram_gib')} GiB RAM, "
        f"Linux {m.get('kernel')}, Python {m.get('python')}; the load generators run on the "
        "same cores as the server",
        f"- edge: {res.get('workers')} Granian workers; every service of scripts/serve.py runs",
        "- ratio: each figure divided by the bare Granian ceiling (loadtest/bare_app.py, same "
        "workers) measured in this run at the nearest concurrency",
        "",
    ]
    for note in res.get("notes") or []:
        lines.append(f"> {note}")
    if res.get("notes"):
        lines.append("")
    ceil = res.get("ceiling") or {}
    if ceil:
        lines += [
            "## Ceiling: bare Granian",
            "",
            "| connections | requests/s | p50 ms | p99 ms |",
            "|---|---|---|---|",
        ]
        for c in sorted(ceil, key=int):
            r = ceil[c]
            lines.append(
                f"| {c} | {_f(r['rps'])} | {_f(r.get('p50_ms'), '{:.2f}')} | "
                f"{_f(r.get('p99_ms'), '{:.2f}')} |"
            )
        lines.append("")
    pt01 = res.get("pt01") or {}
    if pt01:
        lines += [
            "## PT-01 baseline",
            "",
            "![PT-01](pt01_throughput.png) ![percentiles](latency_percentiles.png)",
            "",
            "| endpoint | connections | requests/s | vs ceiling | p50 ms | p95 ms | p99 ms "
            "| errors |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, by in pt01.items():
            for c in sorted(by, key=int):
                r = by[c]
                lines.append(
                    f"| {name} | {c} | {_f(r['rps'])} | {ratio(r['rps'], ceiling_at(res, int(c)))} "
                    f"| {_f(r.get('p50_ms'), '{:.2f}')} | {_f(r.get('p95_ms'), '{:.2f}')} | "
                    f"{_f(r.get('p99_ms'), '{:.2f}')} | {r.get('errors', 0)} |"
                )
            lines.append(f"| {name}: saturation | {saturation(by)} connections | | | | | | |")
        lines.append("")
    pt02 = res.get("pt02") or {}
    if any(pt02.values()):
        lines += [
            "## PT-02 sync vs async purchase",
            "",
            "![PT-02](pt02_sync_vs_async.png) ![events](event_latency_lag.png)",
            "",
            "| path | requests/s | vs ceiling | order rows/s end to end | request p99 ms | "
            "sent → order row p50 / p99 ms | backlog peak (outbox / Kafka lag) | CPU cores |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for p in ("sync", "async"):
            r = pt02.get(p)
            if not r:
                continue
            e2e = (r.get("latency") or {}).get("e2e_ms") or {}
            q = r.get("queues") or {}
            peak_out = max((v for _, v in q.get("outbox") or []), default=0)
            peak_lag = max((v for _, v in q.get("lag") or []), default=0)
            cpu = sum(v.get("cpu_cores", 0.0) for v in (r.get("resources") or {}).values())
            lines.append(
                f"| {p} | {_f(r['rps'])} | {ratio(r['rps'], ceiling_at(res, r['connections']))} | "
                f"{_f(r.get('orders_per_s'))} | {_f(r.get('p99_ms'), '{:.1f}')} | "
                f"{_f(e2e.get('p50'), '{:.1f}')} / {_f(e2e.get('p99'), '{:.1f}')} | "
                f"{peak_out} / {peak_lag} | {cpu:.2f} |"
            )
        a = pt02.get("async") or {}
        if "payments" in a:
            lines += [
                "",
                f"Async: {a.get('holds')} holds, {a.get('orders')} order rows, "
                f"{a.get('payments')} payment intents asked for "
                f"{_f(a.get('payments_drain_s'), '{:.0f}')} s after the last order row "
                "(the next phases started then; what was left kept running at nice 10).",
            ]
        brk = (a.get("latency") or {}).get("breakdown_ms") or {}
        if brk:
            lines += ["", "Async path by stage (sampled purchases, ms):", ""]
            lines += ["| stage | p50 | p95 | p99 |", "|---|---|---|---|"]
            for stage, s in brk.items():
                lines.append(
                    f"| {stage} | {_f(s.get('p50'), '{:.1f}')} | {_f(s.get('p95'), '{:.1f}')} "
                    f"| {_f(s.get('p99'), '{:.1f}')} |"
                )
        lines.append("")
    pt03 = res.get("pt03") or {}
    if any(pt03.values()):
        lines += ["## PT-03 horizontal scaling", "", "![PT-03](pt03_scaling.png)", ""]
        lines += [
            "| what | n | throughput/s | vs ceiling | efficiency vs linear |",
            "|---|---|---|---|---|",
        ]
        for key, metric, label in (
            ("edge", "rps", "edge workers, GET /products/{id}"),
            ("instances", "events_per_s", "orders instances, events drained"),
        ):
            by = pt03.get(key) or {}
            eff = efficiency(by, metric)
            for n in sorted(by, key=int):
                v = by[n].get(metric)
                vs = ratio(v, ceiling_at(res, 100)) if key == "edge" else "n/a"
                e = eff.get(n)
                lines.append(f"| {label} | {n} | {_f(v)} | {vs} | {_f(e, '{:.0%}')} |")
        lines.append("")
        lines.append(
            f"With {m.get('cores')} cores, more edge workers or consumers than cores only share "
            "the same CPU (and the load generator and the stack take their part of it): past "
            f"{m.get('cores')} the curve can only flatten or fall."
        )
        lines.append("")
    pt04 = res.get("pt04") or {}
    if pt04:
        lines += ["## PT-04 Kafka partitions", "", "![PT-04](pt04_partitions.png)", ""]
        lines += [
            "| partitions | events | order rows/s | produce → row p50 / p99 ms | max lag | "
            "balance (max/mean) |",
            "|---|---|---|---|---|---|",
        ]
        for p in sorted(pt04, key=int):
            r = pt04[p]
            lat = r.get("latency_ms") or {}
            max_lag = max((v for _, v in r.get("lag") or [] if v is not None), default=0)
            lines.append(
                f"| {p} | {r.get('rows')}/{r.get('events')} | {_f(r.get('events_per_s'))} | "
                f"{_f(lat.get('p50'), '{:.0f}')} / {_f(lat.get('p99'), '{:.0f}')} | {max_lag} | "
                f"{_f(balance(r.get('messages_by_partition') or {}), '{:.2f}')} |"
            )
        lines.append("")
    for key, title in (("pt05", "PT-05 burst"), ("mix", "Shopper mix (Locust, distributed)")):
        r = res.get(key) or {}
        if not r:
            continue
        lines += [f"## {title}", ""]
        if key == "pt05":
            rec = recovery_s(r.get("history") or [], r.get("stages") or [])
            q = r.get("queues") or {}
            lines += [
                "![PT-05](pt05_burst.png)",
                "",
                f"- stages (users, seconds): {r.get('stages')}",
                "- recovery after the burst: "
                + (_f(rec, "{:.1f} s") if rec is not None else "not reached in the run"),
                f"- error rate: {_f(error_rate(r.get('history') or []), '{:.2%}')}",
                f"- peak outbox entries {max((v for _, v in q.get('outbox') or []), default=0)}, "
                f"peak Kafka lag {max((v for _, v in q.get('lag') or []), default=0)}",
            ]
        agg = (r.get("stats") or {}).get("Aggregated") or {}
        lines += [
            f"- Locust: master + {r.get('workers')} workers, {r.get('users')} users; "
            f"{_f(agg.get('rps'))} requests/s "
            f"(vs ceiling {ratio(agg.get('rps'), ceiling_at(res, 100))}), "
            f"p50 {_f(agg.get('p50'))} ms, p95 {_f(agg.get('p95'))} ms, "
            f"failures {_f(agg.get('failures'))}",
            f"- limit hit: {r.get('limit')} (CPU cores: {json.dumps(r.get('cpu_cores'))})",
            "",
        ]
        if key == "mix":
            lines += [
                "| request | requests/s | p50 ms | p95 ms | failures |",
                "|---|---|---|---|---|",
            ]
            for name, s in (r.get("stats") or {}).items():
                if name != "Aggregated":
                    lines.append(
                        f"| {name} | {_f(s['rps'])} | {_f(s['p50'])} | {_f(s['p95'])} | "
                        f"{_f(s['failures'])} |"
                    )
            lines.append("")
    lines += ["## Resource use", "", "![resources](resources_heatmap.png)", ""]
    lines += ["Plots: " + ", ".join(f"[{t}]({f})" for f, t in PLOTS), ""]
    return "\n".join(lines)


def write(res: Mapping[str, Any], out: Path) -> list[Path]:
    """README.md, results.json and the eight plots into ``out``; returns the files."""
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for (name, _), plot in zip(PLOTS, PLOTTERS, strict=True):
        plot(res, out / name)
        files.append(out / name)
    (out / "README.md").write_text(markdown(res))
    (out / "results.json").write_text(json.dumps(res, indent=1, default=str) + "\n")
    return [out / "README.md", out / "results.json", *files]
