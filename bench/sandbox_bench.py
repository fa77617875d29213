"""Benchmark of the Amili ARM sandbox server itself (not a test).

    .venv/bin/python bench/sandbox_bench.py [--customers 1000000] [--queries 4] [--json]

Starts the sandbox as a subprocess with one client of `--customers` customers and prints:
  * start-up time (spawn until GET /health answers) and the server's RSS right after start;
  * customers/s and MB/s served for 1000-customer pages at concurrency 1 and 4 (every page is read
    once, from fresh queries, so nothing comes from the page cache; bodies are read, not parsed);
  * server time per 1000-customer page (the `Server-Timing: app;dur=` header: generation of the
    customers + JSON serialization + the summary), first reads and cached re-reads;
  * the time of a filtered query (name prefix) over the whole client: the first one (which builds
    the lazy name index) and later ones, with their match counts;
  * the server's RSS at the end.
Goals: a 1000-customer page in <= 20 ms of server time; start-up <= 3 s and RSS <= 300 MB with
1,000,000 customers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from service.sandbox.testing import free_port  # noqa: E402

CLIENT_NO = 2218
TOKEN = "bench-token"
PAGE = 1000


def server_ms(response: httpx.Response) -> float:
    return float(response.headers["server-timing"].split("dur=")[1])


def start(customers: int, prefetch: bool) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    cmd = [sys.executable, "-m", "service.sandbox", "--port", str(port), "--clients",
           f"{CLIENT_NO}={customers}", "--static-token", TOKEN]  # fmt: skip
    if not prefetch:
        cmd.append("--no-prefetch")
    started = time.perf_counter()
    process = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    origin = f"http://127.0.0.1:{port}"
    while True:
        if process.poll() is not None:
            raise SystemExit(f"sandbox exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(origin + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.01)
    return process, origin, time.perf_counter() - started


async def read_pages(origin: str, server: psutil.Process, concurrency: int, queries: int) -> dict[str, Any]:
    """Read every page of `queries` fresh unfiltered queries (10 x 1000 customers each)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{origin}/arm/v1/clients/{CLIENT_NO}/customers"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as http:
        await http.get(url, params={"pagesize": 10})  # warm connection, outside the timing
        first = [await http.get(url, params={"pagesize": PAGE}) for _ in range(queries)]
        jobs: list[tuple[str, int]] = []
        for r in first:
            s = r.json()["summary"]
            jobs += [(s["queryId"], p) for p in range(2, s["totalPages"] + 1)]
        queue: asyncio.Queue[tuple[str, int]] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        timings: list[float] = []
        sizes: list[int] = []

        async def worker() -> None:
            while not queue.empty():
                qid, page = queue.get_nowait()
                r = await http.get(url, params={"query": qid, "pageno": page})
                assert r.status_code == 200 and b'"currentPageSize":1000' in r.content[:120], r.content[:200]
                timings.append(server_ms(r))
                sizes.append(len(r.content))

        cpu0 = sum(server.cpu_times()[:2])
        wall0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - wall0
        cpu = sum(server.cpu_times()[:2]) - cpu0
        await asyncio.sleep(0.1)  # a prefetched page nobody asked for is still the server's CPU
        cached = [server_ms(await http.get(url, params={"query": jobs[0][0], "pageno": 2})) for _ in range(5)]
    pages = len(timings)
    return {
        "concurrency": concurrency,
        "pages": pages,
        "customers_per_s": pages * PAGE / wall,
        "mb_per_s": sum(sizes) / wall / 1e6,
        "page_kb": statistics.mean(sizes) / 1e3,
        "server_ms_mean": statistics.mean(timings),
        "server_ms_p50": statistics.median(timings),
        "server_ms_p95": sorted(timings)[int(0.95 * (pages - 1))],
        "server_ms_max": max(timings),
        "server_ms_cached": statistics.median(cached),
        "server_cpu_ms_per_page": cpu * 1000 / pages,
    }


def filtered(origin: str, prefixes: list[str]) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{origin}/arm/v1/clients/{CLIENT_NO}/customers"
    out = []
    with httpx.Client(headers=headers, timeout=120) as http:
        for prefix in prefixes:
            t0 = time.perf_counter()
            r = http.get(url, params={"name": prefix, "pagesize": PAGE})
            wall = (time.perf_counter() - t0) * 1000
            s = r.json()["summary"]
            small = http.get(url, params={"name": prefix, "pagesize": 10})  # the query without a big page
            out.append(
                {
                    "name": prefix,
                    "matches": s["totalCount"],
                    "wall_ms": wall,
                    "server_ms": server_ms(r),
                    "server_ms_pagesize_10": server_ms(small),
                }
            )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument(
        "--queries", type=int, default=4, help="fresh queries (9 pages each read) per concurrency"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    runs: list[dict[str, Any]] = []
    for prefetch in (False, True):
        process, origin, startup_s = start(args.customers, prefetch)
        proc = psutil.Process(process.pid)
        try:
            if not prefetch:
                startup, rss_start = startup_s, proc.memory_info().rss / 1e6
            for concurrency in (1, 4):
                run = asyncio.run(read_pages(origin, proc, concurrency, args.queries))
                runs.append({"prefetch": prefetch, **run})
            if not prefetch:
                names = filtered(origin, ["Ola", "ø", "Ola", "hansen", "1", "a"])
                rss_end = proc.memory_info().rss / 1e6
        finally:
            process.terminate()
            process.wait(timeout=10)
    result = {
        "customers": args.customers,
        "startup_s": startup,
        "rss_after_start_mb": rss_start,
        "rss_at_end_mb": rss_end,
        "pages": runs,
        "name_queries": names,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"sandbox with {args.customers:,} customers (client {CLIENT_NO})")
    print(f"  start-up (spawn -> /health 200): {startup:.2f} s   (goal <= 3 s)")
    print(f"  RSS after start: {rss_start:.0f} MB, at the end: {rss_end:.0f} MB   (goal <= 300 MB)")
    print("  1000-customer pages read once each (server time = Server-Timing app;dur, wall clock;")
    print(
        "  server CPU = the sandbox process's CPU time / pages, which other load on the machine does not inflate):"
    )
    for run in runs:
        print(
            f"    {'prefetch on ' if run['prefetch'] else 'prefetch off'} concurrency {run['concurrency']}: "
            f"{run['customers_per_s']:>7,.0f} customers/s {run['mb_per_s']:5.1f} MB/s "
            f"({run['pages']} pages of {run['page_kb']:.0f} kB); server time/page "
            f"p50 {run['server_ms_p50']:.1f} mean {run['server_ms_mean']:.1f} p95 {run['server_ms_p95']:.1f} ms; "
            f"server CPU/page {run['server_cpu_ms_per_page']:.1f} ms; cached re-read {run['server_ms_cached']:.2f} ms"
        )
    print("  (goal: <= 20 ms server time per 1000-customer page; with prefetch on, pages after the first are")
    print(
        "   rendered ahead, so their Server-Timing is a cache hit: the 'prefetch off' rows are the render cost)"
    )
    print("  name-prefix queries over the whole client (the first one builds the name index):")
    for q in names:
        print(
            f"    name={q['name']!r:10} {q['matches']:>8,} matches   pagesize 1000: server {q['server_ms']:6.1f} ms"
            f" wall {q['wall_ms']:6.1f} ms;  pagesize 10: server {q['server_ms_pagesize_10']:5.1f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
