"""docs/perf/*.png from bench result files (bench/results/*.json): throughput and peak RSS against
the number of customers, and the RSS of the worker over time at every size measured (100,000,
300,000 and 1,000,000 with `scripts/bench --rss-series`).

    .venv/bin/python -m bench.run --plots [bench/results/A.json ...]   # default: every result file

Where several files measured the same size, the newest wins. Files named `*-before.json` (the bench
run on the code before the profiling changes) are drawn dashed, as "before".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.infra import ROOT, say

OUT = ROOT / "docs" / "perf"
RSS_TARGET = 200.0  # MB, the bench's target (bench.run.TARGETS["rss_mb"])


def _sizes(files: list[Path]) -> dict[int, dict[str, Any]]:
    by_n: dict[int, dict[str, Any]] = {}
    for f in sorted(files, key=lambda p: p.name):
        if f.name.endswith("-before.json"):
            continue
        report = json.loads(f.read_text())
        for size in report.get("sizes", []):
            if "steady" in size and "floors" in size:
                by_n[int(size["n"])] = {**size, "_file": f.name, "_machine": report.get("machine", {})}
    return dict(sorted(by_n.items()))


def draw(files: list[Path]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = _sizes(files)
    before: dict[int, dict[str, Any]] = {}
    for f in files:
        if f.name.endswith("-before.json"):
            for size in json.loads(f.read_text()).get("sizes", []):
                if "steady" in size:
                    before[int(size["n"])] = size
    if not sizes:
        say("no sizes in the result files")
        return []
    OUT.mkdir(parents=True, exist_ok=True)
    ns = list(sizes)
    written: list[Path] = []

    fig, ax = plt.subplots(figsize=(7, 4.2))
    floor = [sum(s["floors"]) / len(s["floors"]) for s in sizes.values()]
    raw = [(n, sum(s["raw_floors"]) / len(s["raw_floors"])) for n, s in sizes.items() if s.get("raw_floors")]
    if raw:
        ax.plot(
            [n for n, _ in raw], [r for _, r in raw], "D:", label="raw floor: httpx + orjson.loads, no models"
        )
    ax.plot(ns, floor, "o-", label="client floor: Amili client alone (fetch + parse)")
    ax.plot(
        ns,
        [s["steady"]["customers_per_s"] for s in sizes.values()],
        "s-",
        label="worker, steady state (1% changed)",
    )
    ax.plot(
        ns,
        [s["baseline"]["customers_per_s"] for s in sizes.values()],
        "^-",
        label="worker, first sync (baseline)",
    )
    if before:
        bn = sorted(before)
        for key, marker, color, label in (
            ("steady", "s--", "C1", "steady state, before profiling"),
            ("baseline", "^--", "C2", "first sync, before profiling"),
        ):
            ax.plot(
                bn,
                [before[n][key]["customers_per_s"] for n in bn],
                marker,
                color=color,
                alpha=0.45,
                label=label,
            )
    ax.set_xscale("log")
    ax.set_xlabel("customers of the client")
    ax.set_ylabel("customers / s")
    ax.set_ylim(bottom=0)
    ax.set_title("Sync throughput against the floor (same sandbox, same broker, one run)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(OUT / "throughput.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2))
    ax.plot(ns, [s["baseline"]["peak_rss_mb"] for s in sizes.values()], "^-", label="first sync")
    ax.plot(ns, [s["steady"]["peak_rss_mb"] for s in sizes.values()], "s-", label="steady-state sync")
    restore = [s.get("restore_on_start", {}).get("peak_rss_mb") for s in sizes.values()]
    if all(r is not None for r in restore):
        ax.plot(ns, restore, "o-", label="restore on start (empty state dir)")
    if before:
        bn = sorted(before)
        ax.plot(
            bn,
            [max(before[n]["baseline"]["peak_rss_mb"], before[n]["steady"]["peak_rss_mb"]) for n in bn],
            "x--",
            color="grey",
            label="before profiling (max of both runs)",
        )
    ax.axhline(RSS_TARGET, color="red", linestyle="--", linewidth=1, label=f"target {RSS_TARGET:.0f} MB")
    ax.set_xscale("log")
    ax.set_xlabel("customers of the client")
    ax.set_ylabel("peak RSS of the worker process (MB)")
    ax.set_ylim(bottom=0)
    ax.set_title("Worker peak RSS (kernel VmHWM) against the number of customers")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    written.append(OUT / "rss.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, (key, title) in zip(
        axes, (("baseline_rss", "first sync"), ("steady_rss", "steady state (1% changed)")), strict=True
    ):
        for n, size in sizes.items():
            samples = size.get(key) or []
            if samples:
                ax.plot([t for t, _ in samples], [r for _, r in samples], label=f"{n:,} customers")
        ax.axhline(RSS_TARGET, color="red", linestyle="--", linewidth=1, label=f"target {RSS_TARGET:.0f} MB")
        ax.set_xlabel("seconds since the request was sent")
        ax.set_title(f"Worker RSS during the {title}")
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("RSS (MB), sampled every 0.1 s")
    fig.tight_layout()
    written.append(OUT / "rss-over-time.png")
    fig.savefig(written[-1], dpi=110)
    plt.close(fig)
    for p in written:
        say(f"wrote {p.relative_to(ROOT)}")
    return written
