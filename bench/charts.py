"""Charts for docs/benchmarks.md, drawn from switchboard-bench JSON reports.

    python bench/charts.py RESULTS_DIR OUT_DIR

- bench-latency.png: publish -> socket latency distribution (percentile spectrum)
  of every fan-out report (fanout-*, cross-*).
- bench-storm.png: the reconnect storm's drop -> resumed, per connection.
- bench-memory.png: gateway memory per connection against connections per gateway,
  from idle-*.json (and RESULTS_DIR/before/idle-*.json when present).
- bench-soak.png: the soak (soak.json): each gateway's RSS, open fds and live tokio
  tasks over time, under load and at the quiet checkpoints that decide the verdict.
- bench-peers.png: Switchboard beside the socketioxide peer, same runs, from
  RESULTS_DIR/hot/<case>-<server>-<run>.json (server: sb10 = Switchboard with its
  10 ms fan-out window, sb0 = without, sio = socketioxide) and from the pairs
  scripts/bench writes (<case>.json, <case>-sio.json): the median of the runs of
  each case, the bar's whiskers the lowest and highest. The same medians, with the
  ratio of Switchboard to socketioxide, go to RESULTS_DIR/side-by-side.md (and stdout).
"""

import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(pattern):
    reports = []
    for path in sorted(glob.glob(pattern)):
        with open(path) as f:
            report = json.load(f)
        report["_name"] = os.path.splitext(os.path.basename(path))[0]
        reports.append(report)
    return reports


def spectrum(ax, summary, label):
    points = [(q, v) for q, v in summary.get("spectrum", []) if q < 1.0]
    if not points:
        return
    xs = [1.0 / (1.0 - q) for q, _ in points]
    ys = [v / 1000.0 for _, v in points]
    ax.plot(xs, ys, marker="o", markersize=3, label=label)


PERCENTILE_LABELS = ["p0", "p50", "p90", "p99", "p99.9", "p99.99", "p99.999"]


def percentile_axis(ax, points):
    """A log x axis of percentiles (the spectrum's 1/(1-q)), `points` ticks."""
    ax.set_xscale("log")
    ax.set_xticks([1, 2] + [10**n for n in range(1, points - 1)])
    ax.set_xticklabels(PERCENTILE_LABELS[:points])


def finish(fig, ax, out, name, title, grid_which="major"):
    ax.set_title(title)
    ax.grid(True, which=grid_which, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, name), dpi=110)
    plt.close(fig)


def latency_chart(results, out):
    reports = load(os.path.join(results, "fanout-*.json")) + load(
        os.path.join(results, "cross-*.json")
    )
    fig, ax = plt.subplots(figsize=(10, 6))
    ax.set_prop_cycle(color=plt.cm.tab10.colors + plt.cm.Dark2.colors)
    for r in reports:
        if r["latency_us"]["count"] == 0:
            continue
        label = "{} ({:.0f} deliveries/s, {} replica{})".format(
            r["_name"], r["delivered_per_sec"], r["replicas"], "s" if r["replicas"] > 1 else ""
        )
        spectrum(ax, r["latency_us"], label)
    ax.axhline(5, color="grey", linestyle="--", linewidth=1)
    ax.text(1.05, 5.3, "target p99 5 ms (one replica)", color="grey", fontsize=8)
    ax.axhline(15, color="grey", linestyle=":", linewidth=1)
    ax.text(1.05, 16, "target p99 15 ms (two replicas)", color="grey", fontsize=8)
    percentile_axis(ax, 7)
    ax.set_yscale("log")
    ax.set_xlabel("percentile")
    ax.set_ylabel("publish -> socket latency (ms)")
    finish(fig, ax, out, "bench-latency.png",
           "Latency distribution (HDR histogram, every delivery)", grid_which="both")


def storm_chart(results, out):
    reports = [r for r in load(os.path.join(results, "storm-*.json")) if r.get("storm")]
    if not reports:
        return
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for r in reports:
        label = "{}: {} connections dropped at once".format(r["_name"], r["connections"]["target"])
        spectrum(ax, r["storm"]["resume_us"], label)
    ax.axhline(10000, color="grey", linestyle="--", linewidth=1)
    ax.text(1.05, 10500, "target: all resumed within 10 s", color="grey", fontsize=8)
    percentile_axis(ax, 6)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("percentile of connections")
    ax.set_ylabel("drop -> resumed, replay caught up (ms)")
    finish(fig, ax, out, "bench-storm.png", "Reconnect storm: time to resume", grid_which="both")


def memory_points(pattern):
    points = []
    for r in load(pattern):
        for g in r["gateways"]:
            if g.get("rss_per_connection_bytes"):
                points.append(
                    (
                        g["connections"],
                        g["rss_per_connection_bytes"] / 1024.0,
                        r["connections"]["target"],
                    )
                )
    return sorted(points)


def memory_chart(results, out):
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for pattern, label, style in [
        (os.path.join(results, "before", "idle-*.json"), "before", "s--"),
        (os.path.join(results, "idle-*.json"), "now", "o-"),
    ]:
        points = memory_points(pattern)
        if not points:
            continue
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        ax.plot(xs, ys, style, label=label + " (each point: one gateway process)")
        annotated = False
        for x, y, total in points:
            if total >= 50000 and not annotated:
                annotated = True
                ax.annotate(
                    "{}k run, 3 gateways".format(total // 1000),
                    (x, y),
                    textcoords="offset points",
                    xytext=(5, 8),
                    fontsize=8,
                )
    ax.axhline(5, color="grey", linestyle="--", linewidth=1)
    ax.text(0, 5.15, " target 5 KiB", color="grey", fontsize=8)
    ax.set_xlabel("connections held by the gateway process")
    ax.set_ylabel("gateway RSS per connection (KiB)")
    ax.set_ylim(bottom=0)
    finish(fig, ax, out, "bench-memory.png", "Idle memory per connection")


SOAK_PANELS = [
    ("rss_kib", "RSS (MiB)", 1 / 1024.0),
    ("fds", "open file descriptors", 1.0),
    ("tasks_alive", "live tokio tasks", 1.0),
]


def soak_chart(results, out):
    path = os.path.join(results, "soak.json")
    if not os.path.exists(path):
        return
    with open(path) as f:
        r = json.load(f)
    samples = r["samples"]
    warmup = r["params"]["warmup_secs"]
    gateways = sorted({s["gateway"] for s in samples})
    judged = {(j["gateway"], j["metric"]): j for j in r["verdict"]["judgements"]}
    fig, axes = plt.subplots(len(SOAK_PANELS), 1, figsize=(10, 8), sharex=True)
    colors = plt.cm.tab10.colors
    for ax, (metric, ylabel, scale) in zip(axes, SOAK_PANELS):
        for g in gateways:
            color = colors[g % len(colors)]
            for phase, style, label in [
                ("load", dict(linewidth=0.8, alpha=0.6), "under load"),
                ("quiet", dict(marker="o", markersize=4, linestyle="none"), "quiet checkpoint"),
            ]:
                points = [
                    (s["t"] / 60.0, s[metric] * scale)
                    for s in samples
                    if s["gateway"] == g and s["phase"] == phase and s.get(metric) is not None
                ]
                if points:
                    ax.plot(*zip(*points), color=color, label="gateway {}, {}".format(g, label),
                            **style)
            j = judged.get((g, metric))
            if j:
                end = max(s["t"] for s in samples) / 60.0
                ax.hlines(
                    [j["first_third_median"] * scale, j["last_third_median"] * scale],
                    [warmup / 60.0, warmup / 60.0 + (end - warmup / 60.0) * 2 / 3],
                    [warmup / 60.0 + (end - warmup / 60.0) / 3, end],
                    colors=[color], linestyles="dashed", linewidth=1,
                )
        ax.axvspan(0, warmup / 60.0, color="grey", alpha=0.12)
        ax.set_ylabel(ylabel)
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[0].text(0.2, 0, " warm-up", color="grey", fontsize=8, va="bottom")
    axes[0].legend(fontsize=7, ncol=2, loc="lower right")
    axes[-1].set_xlabel("minutes")
    t = r["traffic"]
    fig.suptitle(
        "Soak: {:.0f} min, {:,} visits (a session, a turn, a publish each), {}".format(
            r["params"]["duration_secs"] / 60.0, t["visits"],
            "flat" if r["verdict"]["passed"] else "GREW",
        )
    )
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bench-soak.png"), dpi=110)
    plt.close(fig)


PEER_SERVERS = [
    ("sb10", "Switchboard"),
    ("sb0", "Switchboard, no fan-out window"),
    ("sio", "socketioxide 0.18.9"),
]

# (title, unit, value of a report or None) of each panel of bench-peers.png.
PEER_FIGURES = [
    ("p99 publish -> socket", "ms",
     lambda r: r["latency_us"]["p99"] / 1000.0 if r["latency_us"]["count"] else None),
    ("publish call p50", "ms",
     lambda r: r["publish"]["call_latency_us"]["p50"] / 1000.0 if r.get("publish") else None),
    ("server CPU per million deliveries", "CPU-s",
     lambda r: r["cpu_secs_per_million_events"] if r["delivered"] else None),
    ("deliveries per second", "thousands",
     lambda r: r["delivered_per_sec"] / 1000.0 if r["delivered"] else None),
    ("RSS per idle connection", "KiB",
     lambda r: r["rss_per_connection_bytes"] / 1024.0 if r.get("rss_per_connection_bytes") else None),
]


def median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2.0


def peer_runs(results):
    """{case: {server: [report, ...]}}: the repeated runs in
    RESULTS_DIR/hot/<case>-<server>-<run>.json, and the pairs `scripts/bench` writes
    (<case>.json and <case>-sio.json)."""
    cases = {}
    for r in load(os.path.join(results, "hot", "*.json")):
        parts = r["_name"].rsplit("-", 2)
        if len(parts) != 3 or parts[1] not in dict(PEER_SERVERS):
            continue
        case, server, _run = parts
        cases.setdefault(case, {}).setdefault(server, []).append(r)
    names = {os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(results, "*.json"))}
    for r in load(os.path.join(results, "*.json")):
        name = r["_name"]
        if name.endswith("-sio"):
            case, server = name[: -len("-sio")], "sio"
        elif name + "-sio" in names:
            case, server = name, "sb10"
        else:
            continue
        cases.setdefault(case, {}).setdefault(server, []).append(r)
    return cases


def peer_panels(results):
    """[(title, unit, [(case, {server: (median, lowest, highest)})])]: each figure of
    the cases measured on socketioxide and on Switchboard."""
    cases = peer_runs(results)
    panels = []
    for title, unit, value in PEER_FIGURES:
        rows = []
        for case in sorted(cases):
            bars = {}
            for server, reports in cases[case].items():
                values = [v for v in (value(r) for r in reports) if v is not None]
                if values:
                    bars[server] = (median(values), min(values), max(values))
            if "sio" in bars and len(bars) > 1:
                rows.append((case, bars))
        if rows:
            panels.append((title, unit, rows))
    return panels


def peers_chart(results, out):
    panels = peer_panels(results)
    if not panels:
        return
    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 3.2 * len(panels)))
    if len(panels) == 1:
        axes = [axes]
    width = 0.8 / len(PEER_SERVERS)
    colors = plt.cm.tab10.colors
    for ax, (title, unit, rows) in zip(axes, panels):
        for i, (server, label) in enumerate(PEER_SERVERS):
            xs, ys, low, high = [], [], [], []
            for x, (_case, bars) in enumerate(rows):
                if server in bars:
                    mid, lo, hi = bars[server]
                    xs.append(x + (i - 1) * width)
                    ys.append(mid)
                    low.append(mid - lo)
                    high.append(hi - mid)
            if xs:
                ax.bar(xs, ys, width, yerr=[low, high], capsize=2, label=label, color=colors[i])
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels([case for case, _ in rows], fontsize=7, rotation=25, ha="right")
        ax.set_ylabel(unit)
        if unit == "ms":
            # A saturated case runs hundreds of times the others' latency.
            ax.set_yscale("log")
        ax.set_title(title, fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bench-peers.png"), dpi=110)
    plt.close(fig)


def peers_table(results):
    """The side-by-side table of bench-peers.png as Markdown: each case's median per
    server and the ratio of Switchboard (its default window) to socketioxide."""
    lines = [
        "| case | figure | Switchboard | Switchboard, no window | socketioxide | ratio |",
        "|---|---|---|---|---|---|",
    ]
    rows = sorted(
        (case, order, title, unit, bars)
        for order, (title, unit, cases) in enumerate(peer_panels(results))
        for case, bars in cases
    )
    for case, _order, title, unit, bars in rows:
        cell = {server: "{:.3g}".format(bars[server][0]) if server in bars else "—"
                for server, _label in PEER_SERVERS}
        ratio = "—"
        if "sb10" in bars and bars["sio"][0]:
            ratio = "{:.2f}×".format(bars["sb10"][0] / bars["sio"][0])
        lines.append("| {} | {} ({}) | {} | {} | {} | {} |".format(
            case, title, unit, cell["sb10"], cell["sb0"], cell["sio"], ratio))
    return "\n".join(lines) + "\n"


def main():
    results, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    latency_chart(results, out)
    storm_chart(results, out)
    memory_chart(results, out)
    soak_chart(results, out)
    peers_chart(results, out)
    table = peers_table(results)
    with open(os.path.join(results, "side-by-side.md"), "w") as f:
        f.write(table)
    print(table)
    print("charts written to", out)


if __name__ == "__main__":
    main()
