"""Where a worker's memory goes over a run: the real worker process (`amili-sync run`) with a thread
that samples, every `AMILI_PROBE_INTERVAL` seconds, the kernel's view (RSS, anonymous, file and
shared pages, VmHWM), glibc's heap (`mallinfo2`: in use, free, mmapped), SQLite's own allocator
(`sqlite3_memory_used`, page cache) and Python's allocated blocks, into a JSON-lines file.

    python -m bench.memory_probe --sizes 100000,1000000        # broker + sandbox of its own
    python -m bench.memory_probe --sizes 300000 --steady       # also the steady (1 % changed) run

The worker runs as `python -m bench.memory_probe run` with `AMILI_PROBE_OUT` set (`probe_main`);
`--trace S` adds tracemalloc's top lines (against the first ones) every S seconds (slow). Diagnostics
only: the bench's figures come from `scripts/bench`.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from bench.infra import ROOT

# --- inside the worker ---------------------------------------------------------------------------


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
            "keepcost",
        )
    ]  # fmt: skip


def _status_kb(pid: str = "self") -> dict[str, int]:
    out: dict[str, int] = {}
    for path in (f"/proc/{pid}/status", f"/proc/{pid}/smaps_rollup"):
        try:
            text = Path(path).read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if len(parts) == 2 and parts[1] == "kB":
                out[key.strip()] = int(parts[0])
    return out


def sample() -> dict[str, Any]:
    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _MallInfo2
    sqlite = ctypes.CDLL("libsqlite3.so.0")
    sqlite.sqlite3_memory_used.restype = ctypes.c_int64
    sqlite.sqlite3_memory_highwater.restype = ctypes.c_int64
    kb = _status_kb()
    mi = libc.mallinfo2()
    mb = 1 / 1024
    return {
        "rss": kb.get("VmRSS", 0) * mb,
        "hwm": kb.get("VmHWM", 0) * mb,
        "anon": kb.get("RssAnon", 0) * mb,
        "file": kb.get("RssFile", 0) * mb,
        "shmem": kb.get("RssShmem", 0) * mb,
        "heap_sbrk": mi.arena / 2**20,
        "heap_mmap": mi.hblkhd / 2**20,
        "heap_used": mi.uordblks / 2**20,
        "heap_free": mi.fordblks / 2**20,
        "sqlite": sqlite.sqlite3_memory_used() / 2**20,
        "sqlite_hw": sqlite.sqlite3_memory_highwater(0) / 2**20,
        "py_blocks": sys.getallocatedblocks(),
        "threads": threading.active_count(),
    }


def pymalloc_stats() -> dict[str, float]:
    """Python's small-object allocator (`sys._debugmallocstats`, which writes to fd 2)."""
    with tempfile.TemporaryFile("w+") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read()
    names = {"arenas allocated current": "pm_arenas", "arenas highwater mark": "pm_arenas_hw",
             "bytes in allocated blocks": "pm_used", "bytes in available blocks": "pm_free"}  # fmt: skip
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.rpartition("=")
        name = names.get(key.strip().lstrip("# "))
        if name:
            number = float(value.strip().replace(",", ""))
            out[name] = number if name.startswith("pm_arenas") else number / 2**20
    return out


def malloc_info_mb() -> dict[str, float]:
    """glibc's heap over all its arenas (threads get arenas of their own): `malloc_info`."""
    import re

    libc = ctypes.CDLL("libc.so.6")
    libc.fopen.restype = ctypes.c_void_p
    with tempfile.NamedTemporaryFile() as tmp:
        fp = libc.fopen(tmp.name.encode(), b"w")
        libc.malloc_info(0, ctypes.c_void_p(fp))
        libc.fclose(ctypes.c_void_p(fp))
        text = Path(tmp.name).read_text()
    tail = text[text.rfind("</heap>") :]
    current = re.search(r'<system type="current" size="(\d+)"', tail)
    rest = re.search(r'<total type="rest" count="\d+" size="(\d+)"', tail)
    mmap = re.search(r'<total type="mmap" count="\d+" size="(\d+)"', tail)
    heaps = text.count("<heap nr=")
    return {
        "all_heaps": int(current.group(1)) / 2**20 if current else 0.0,
        "all_free": int(rest.group(1)) / 2**20 if rest else 0.0,
        "all_mmap": int(mmap.group(1)) / 2**20 if mmap else 0.0,
        "heaps": heaps,
    }


def _trace_top(f: Any, label: str, first: Any) -> Any:
    import tracemalloc

    snap = tracemalloc.take_snapshot().filter_traces(
        [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    )
    f.write(json.dumps({"trace": label, "traced_mb": tracemalloc.get_traced_memory()[0] / 2**20}) + "\n")
    stats = snap.compare_to(first, "lineno") if first is not None else snap.statistics("lineno")
    for stat in stats[:40]:
        frame = stat.traceback[0]
        diff = getattr(stat, "size_diff", 0)
        f.write(json.dumps({"where": f"{frame.filename}:{frame.lineno}", "mb": stat.size / 2**20,
                            "diff_mb": diff / 2**20, "count": stat.count}) + "\n")  # fmt: skip
    f.flush()
    return snap


def _probe_thread(out: Path, interval: float) -> None:
    t0 = time.monotonic()
    trace_every = float(os.environ.get("AMILI_PROBE_TRACE", "0"))
    first, last_trace, n = None, t0, 0
    with out.open("a") as f:
        while True:
            row = {"t": round(time.monotonic() - t0, 2), **sample()}
            if n % 5 == 0:
                row.update(pymalloc_stats())
                row.update(malloc_info_mb())
            n += 1
            f.write(json.dumps(row) + "\n")
            f.flush()
            if trace_every and time.monotonic() - last_trace >= trace_every:
                last_trace = time.monotonic()
                snap = _trace_top(f, f"t={row['t']}", first)
                first = first or snap
            time.sleep(interval)


def probe_main() -> None:
    out = Path(os.environ["AMILI_PROBE_OUT"])
    interval = float(os.environ.get("AMILI_PROBE_INTERVAL", "1"))
    if float(os.environ.get("AMILI_PROBE_TRACE", "0")):
        import tracemalloc

        tracemalloc.start(1)
    threading.Thread(target=_probe_thread, args=(out, interval), daemon=True, name="memory-probe").start()
    from service.entrypoints.cli import main

    sys.exit(main())


# --- the driver ----------------------------------------------------------------------------------


async def probe_size(
    bootstrap: str, sandbox: Any, workdir: Path, n: int, client_no: int, steady: bool, trace: float = 0.0
) -> None:
    from bench.run import change_spec
    from bench.worker_run import measured_run
    from testkit.sandbox import sandbox_changes
    from testkit.worker import WorkerProcess, free_port, worker_env

    prefix = f"probe{uuid.uuid4().hex[:8]}.amili.customers"
    state = workdir / f"state-{n}"
    extra = {
        "AMILI_SYNC_API__CONCURRENCY": "4",
        "AMILI_SYNC_API__PAGE_SIZE": "1000",
        "AMILI_SYNC_LOG_LEVEL": "INFO",
    }
    env = worker_env(bootstrap, prefix, sandbox, state, free_port(), **extra)
    runs = ["baseline", "steady"] if steady else ["baseline"]
    for name in runs:
        if name == "steady":
            await sandbox_changes(sandbox, clientNo=client_no, **change_spec(n, seed=n % 9973))
        out = workdir / f"probe-{n}-{name}.jsonl"
        env_run = {**env, "AMILI_PROBE_OUT": str(out), "AMILI_PROBE_INTERVAL": "1"}
        if trace:
            env_run["AMILI_PROBE_TRACE"] = str(trace)
        worker = WorkerProcess(env_run, workdir / f"worker-{n}-{name}.log", module="bench.memory_probe")
        figures = await measured_run(worker, bootstrap, prefix, client_no, timeout=max(600.0, n / 500))
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        print(f"== {n:,} {name}: peak {figures.peak_rss_mb:.1f} MB, {figures.engine_s:.1f} s, "
              f"cpu {figures.worker_cpu_s:.1f} s, {figures.result['counts']}", flush=True)  # fmt: skip
        step = max(1, len(rows) // 25)
        keys = [
            "rss",
            "anon",
            "file",
            "shmem",
            "heap_sbrk",
            "heap_mmap",
            "heap_used",
            "heap_free",
            "sqlite",
            "py_blocks",
        ]
        print("t " + " ".join(keys), flush=True)
        for row in rows[::step] + rows[-1:]:
            print(
                f"{row['t']:.0f} "
                + " ".join(f"{row[k]:.1f}" if k != "py_blocks" else str(row[k]) for k in keys)
            )


async def main_async(args: argparse.Namespace) -> None:
    from service.sandbox.testing import running_sandbox
    from testkit.broker import LocalBroker

    sizes = sorted(int(s) for s in args.sizes.split(","))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="amili-probe-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"workdir {workdir}", flush=True)
    broker = LocalBroker(workdir / "kafka", heap="768m") if not args.bootstrap else None
    try:
        bootstrap = broker.start() if broker else args.bootstrap
        clients = {9000 + i: n for i, n in enumerate(sizes)}
        with running_sandbox(
            clients, seed=11, extra_args=["--total-count", "true", "--name-mix", "dense"]
        ) as sb:
            for client_no, n in clients.items():
                await probe_size(bootstrap, sb, workdir, n, client_no, args.steady, args.trace)
    finally:
        if broker:
            broker.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "run":
        probe_main()
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--steady", action="store_true")
    parser.add_argument("--bootstrap")
    parser.add_argument("--workdir")
    parser.add_argument("--trace", type=float, default=0.0, help="tracemalloc top lines every this many s")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
