"""Where a worker run's time goes, per customer: a py-spy profile of the measured run itself,
each sample given to one part of the work by the code it was in.

The worker process of each measured run (first sync and steady state) is sampled by py-spy
(`--nonblocking`, so the process is never paused; its subprocesses and threads included; idle
samples, i.e. waiting in the event loop's `select`, left out). Each sample goes to the part of the
first frame, from the innermost outwards, that a rule below names:

  decode      the page's JSON turned into customers: `service/amili/` parsing, models, decoders
  state       the tracked state of a customer (`service/engine/extract.py`, `service/sync/state.py`)
  diff        the stored state read and compared (`service/sync/diff.py`, `records.py` but encoders)
  event       change events and snapshot records built (`service/sync/events.py`, the encoders)
  Kafka       `service/kafka/`, the transaction pipeline, aiokafka (its sender task included)
  SQLite      `service/snapshot/` (the cache: lookups, seen marks, writes)
  HTTP        httpx, httpcore, h11 and the client's call layer (`_http.py`, auth, retries)
  reader      `service/amili/` reader, planner, slicing (page guards, duplicate checks, slices)
  engine      the engine's own lines that call none of the above (the per-customer loop, counters)
  memory      `service/tuning.py` (malloc_trim)
  logging     structlog, logging, metrics, tracing
  other       everything else (the event loop, FastStream, the request consumer)

A sample whose innermost project frame is `service/engine/run.py` itself (code inlined in the
loop, e.g. the unchanged check's `orjson.dumps(state)`) is given by the text of the line it was on
(`customer_state` -> state, `stores_state` -> diff, ...).

py-spy counts a thread as busy while it runs *or waits for a core* (runnable), so on a loaded
machine the samples measure more than CPU time. The parts are therefore each part's share of the
samples times the CPU time the kernel counted for the process during the run (µs per customer),
and the run's wall time per customer (1 / its customers/s) is split into that CPU time, the time
the process was runnable without a core (sampled busy time minus CPU time) and the time it was
idle, waiting for the API or the broker (wall minus sampled busy time). On a quiet machine the
sampled busy time and the kernel's CPU time agree; that is the cross-check of the sampling.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

from bench.infra import ROOT

PARTS = ("decode", "state", "diff", "event", "Kafka", "SQLite", "HTTP", "reader", "engine", "memory",
         "logging", "other")  # fmt: skip

FRAME = re.compile(r"^(?P<func>.*) \((?P<path>[^()]*):(?P<line>\d+)\)$")

# (part, path pattern), first match wins; library paths are as py-spy prints them (site-packages cut)
PATH_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("event", re.compile(r"^service/sync/records\.py$")),  # refined by function name below
    ("decode", re.compile(r"^service/amili/(parsing|models|_tolerant|.*decod.*|.*fast.*|.*validat.*)\.py$")),
    ("HTTP", re.compile(r"^service/amili/(_http|auth|client|_instrument|_closing)\.py$")),
    ("reader", re.compile(r"^service/amili/")),
    ("state", re.compile(r"^service/(engine/extract|sync/state)\.py$")),
    ("diff", re.compile(r"^service/(sync/diff|engine/reconcile|engine/unapplied)\.py$")),
    ("event", re.compile(r"^service/sync/(events|event_models|kinds)\.py$")),
    ("Kafka", re.compile(r"^(service/kafka/|service/engine/transactions\.py$|aiokafka/|kafka/)")),
    ("SQLite", re.compile(r"^(service/snapshot/|sqlite3/)")),
    ("HTTP", re.compile(r"^(httpx|httpcore|h11|anyio|sniffio|certifi|ssl\.py|aiolimiter|stamina|tenacity)")),
    ("memory", re.compile(r"^service/tuning\.py$")),
    (
        "logging",
        re.compile(
            r"^(structlog/|logging/|prometheus_client/|opentelemetry/|service/(logs|metrics|tracing)\.py)"
        ),
    ),
    ("engine", re.compile(r"^service/engine/run\.py$")),
]

# the text of a line of service/engine/run.py -> part (first match wins)
LINE_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("state", re.compile(r"customer_state")),
    (
        "diff",
        re.compile(r"stores_state|decode_entry|diff_customer|needs_snapshot_update|orjson\.dumps\(state"),
    ),
    ("event", re.compile(r"build_event|_event_records|encode_state|snapshot_key|OutRecord\(")),
    ("SQLite", re.compile(r"self\.cache\.|get_raw_states")),
    ("Kafka", re.compile(r"pipeline\.|publisher\.")),
    ("memory", re.compile(r"release_free_memory")),
]


@cache
def _source_line(path: str, line: int) -> str:
    try:
        lines = (ROOT / path).read_text().splitlines()
    except OSError:
        return ""
    return lines[line - 1] if 0 < line <= len(lines) else ""


@cache
def part_of_frame(frame: str) -> str | None:
    """The part a frame names, or None (look further out)."""
    m = FRAME.match(frame)
    if m is None:
        return None
    path, func = m["path"], m["func"]
    for part, rule in PATH_RULES:
        if rule.search(path):
            if path == "service/sync/records.py":
                return "event" if func.startswith("encode") or func.endswith("to_bytes") else "diff"
            if part == "engine":
                text = _source_line(path, int(m["line"]))
                return next((p for p, r in LINE_RULES if r.search(text)), "engine")
            return part
    return None


def part_of_stack(frames: list[str]) -> str:
    for frame in reversed(frames):
        part = part_of_frame(frame)
        if part is not None:
            return part
    return "other"


def read_profile(raw_profile: Path) -> Counter[str]:
    """Samples per part of a py-spy `--format raw` profile (one `stack count` line per stack)."""
    parts: Counter[str] = Counter()
    for line in raw_profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or not stack:
            continue
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        parts[part_of_stack(frames)] += int(count)
    return parts


def breakdown(
    raw_profile: Path, customers: int, rate: float, *, cpu_s: float, wall_s: float
) -> dict[str, Any]:
    """µs per customer of each part (its share of the samples x the CPU time the kernel counted), and
    how the run's wall time divides into that CPU time, time runnable but waiting for a core, and
    time idle (waiting for the API or the broker)."""
    samples = read_profile(raw_profile)
    total = sum(samples.values())
    n = max(customers, 1)
    cpu_us = cpu_s * 1e6 / n
    busy_us = total / rate * 1e6 / n  # sampled while running or runnable
    wall_us = wall_s * 1e6 / n
    us = {part: round(samples.get(part, 0) / total * cpu_us, 2) if total else 0.0 for part in PARTS}
    return {
        "us_per_customer": us,
        "cpu_us": round(cpu_us, 2),
        "sampled_busy_us": round(busy_us, 2),
        "waiting_for_cpu_us": round(max(busy_us - cpu_us, 0.0), 2),
        "idle_us": round(max(wall_us - max(busy_us, cpu_us), 0.0), 2),
        "wall_us": round(wall_us, 2),
        "samples": total,
        "rate_hz": rate,
    }


def describe(b: dict[str, Any]) -> str:
    parts = ", ".join(f"{p} {v:.1f}" for p, v in b["us_per_customer"].items() if v >= 0.05)
    return (
        f"{parts} = {b['cpu_us']:.1f} µs CPU (kernel); + {b['waiting_for_cpu_us']:.1f} runnable without a "
        f"core + {b['idle_us']:.1f} idle = {b['wall_us']:.1f} µs wall per customer ({b['samples']} samples, "
        f"busy {b['sampled_busy_us']:.1f} µs)"
    )
