"""Benchmark of the Amili ARM client against the sandbox: fetch + parse throughput.

    .venv/bin/python bench/client_bench.py [--customers 100000] [--concurrency 1,2,4,8] [--profile]

Starts the sandbox with one client of `--customers` customers (true `totalCount`, so the 10,000
cap makes the client read it in name-prefix slices, as in production), then for each concurrency
reads every customer once and prints customers/s, the client's CPU time against wall time, the
sandbox process's CPU time (the share of the time spent serving, not reading), and the parse
timing of the ways to turn a 1000-customer page into models (the strict msgspec decoder the client
uses, the tolerant pydantic models, orjson + `model_validate`). `--profile` adds a pyinstrument
profile of one read at concurrency 4.

Importable: `measure_floor(base_url, settings, client_no, concurrency)` reads one client once and
returns a dict with `customers_per_s` (and the counts behind it); `measure_floor_async` is the same
for callers that already run an event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.raw_floor import ListRecorder
from service.amili import AmiliClient, NamePrefixes
from service.amili.parsing import parse_list, parse_list_orjson, parse_list_tolerant
from service.config import ApiSettings

CLIENT_NO = 2218


async def measure_floor_async(
    base_url: str,
    settings: ApiSettings,
    client_no: int,
    concurrency: int,
    *,
    profile: bool = False,
    recorder: ListRecorder | None = None,
    known_names: Sequence[str] = (),
    prefixes: NamePrefixes | None = None,
) -> dict[str, Any]:
    """Read every customer of `client_no` once; return throughput and where the time went.
    With a `recorder`, every list request the read sends is recorded (the raw floor replays them).
    `known_names` or `prefixes` teach the slicing planner, as the worker's state teaches its own."""
    tuned = settings.model_copy(
        update={
            "base_url": base_url,
            "concurrency": concurrency,
            "max_connections": max(settings.max_connections, concurrency),
        }
    )
    profiler = None
    transport = recorder.transport(tuned) if recorder is not None else None
    async with AmiliClient(tuned, transport=transport) as amili:
        await amili.get_customer(client_no, "0")  # token and a warm connection, outside the timing
        if profile:
            from pyinstrument import Profiler

            profiler = Profiler(async_mode="enabled", interval=0.001)
            profiler.start()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        read = amili.read(client_no, known_names=known_names, name_prefixes=prefixes)
        customers = 0
        async for page in read:
            customers += len(page.customers)
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        if profiler is not None:
            profiler.stop()
    report = read.report
    result: dict[str, Any] = {
        "concurrency": concurrency,
        "customers": customers,
        "seconds": round(wall, 3),
        "customers_per_s": round(customers / wall) if wall else 0.0,
        "client_cpu_s": round(cpu, 3),
        "client_cpu_share": round(cpu / wall, 3) if wall else 0.0,
        "pages": report.pages_read,
        "api_calls": sum(report.api_calls.values()),
        "slices": report.slices,
        "slice_queries": report.slice_queries,
        "probe_queries": report.probe_queries,
        "api_requests": report.api_requests,
        "requests_per_1000": report.requests_per_1000,
        "coverage": report.coverage,
        "known_names": report.known_names,
        "known_prefixes": report.known_prefixes,
        "retries": dict(report.retries),
    }
    if profiler is not None:
        result["profile"] = profiler.output_text(unicode=False, color=False, show_all=False)
    return result


def measure_floor(
    base_url: str,
    settings: ApiSettings,
    client_no: int,
    concurrency: int,
    recorder: ListRecorder | None = None,
    known_names: Sequence[str] = (),
    *,
    prefixes: NamePrefixes | None = None,
) -> dict[str, Any]:
    """Synchronous `measure_floor_async` (runs its own event loop)."""
    return asyncio.run(
        measure_floor_async(
            base_url,
            settings,
            client_no,
            concurrency,
            recorder=recorder,
            known_names=known_names,
            prefixes=prefixes,
        )
    )


async def fetch_raw_pages(settings: ApiSettings, client_no: int, pages: int) -> list[bytes]:
    """Raw bodies of the first `pages` pages of one (capped) query, for the parse comparison."""
    async with httpx.AsyncClient(timeout=60) as http:
        headers = {}
        if settings.token_url and settings.client_secret:
            answer = await http.post(
                settings.token_url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": settings.client_id or "",
                    "client_secret": settings.client_secret.get_secret_value(),
                },
            )
            headers["Authorization"] = "Bearer " + answer.json()["access_token"]
        url = f"{settings.base_url.rstrip('/')}/clients/{client_no}/customers"
        first = await http.get(url, params={"pagesize": 1000, "maximumcount": 10000}, headers=headers)
        first.raise_for_status()
        bodies = [first.content]
        query = orjson.loads(first.content)["summary"]["queryId"]
        for page_no in range(2, pages + 1):
            answer = await http.get(url, params={"query": query, "pageno": page_no}, headers=headers)
            answer.raise_for_status()
            bodies.append(answer.content)
        return bodies


def compare_parsers(bodies: list[bytes], rounds: int = 5) -> dict[str, dict[str, float]]:
    """Median seconds per page for each way of parsing; customers/s of parsing alone."""
    customers = len(orjson.loads(bodies[0])["customers"])
    ways = {
        "msgspec structs (used)": parse_list,
        "pydantic validate_json (tolerant path)": parse_list_tolerant,
        "orjson.loads + model_validate": parse_list_orjson,
        "orjson.loads only (no models)": orjson.loads,
    }
    out: dict[str, dict[str, float]] = {}
    for name, parse in ways.items():
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            for body in bodies:
                parse(body)
            times.append((time.perf_counter() - start) / len(bodies))
        per_page = statistics.median(times)
        out[name] = {"ms_per_page": round(per_page * 1000, 2), "customers_per_s": round(customers / per_page)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--concurrency", default="1,2,4,8")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument(
        "--profile", action="store_true", help="pyinstrument profile of one read at concurrency 4"
    )
    args = parser.parse_args()

    from service.sandbox.testing import running_sandbox

    with running_sandbox({CLIENT_NO: args.customers}, extra_args=["--total-count", "true"]) as sandbox:
        settings = ApiSettings(
            base_url=sandbox.base_url,
            token_url=sandbox.token_url,
            client_id=sandbox.client_id,
            client_secret=sandbox.client_secret,
            page_size=args.page_size,
            rate_limit=100_000,
            read_timeout=120,
        )
        server = psutil.Process(sandbox.process.pid)

        def server_cpu() -> float:
            procs = [server, *server.children(recursive=True)]
            return sum(p.cpu_times().user + p.cpu_times().system for p in procs)

        load = ", ".join(f"{x:.1f}" for x in psutil.getloadavg())
        print(
            f"sandbox at {sandbox.base_url}, client {CLIENT_NO} with {args.customers} customers; "
            f"{psutil.cpu_count()} cores, load average {load} (other work on the machine skews the figures)"
        )
        print(
            f"{'conc':>4} {'customers/s':>12} {'seconds':>8} {'pages':>6} {'calls':>6} {'slices':>6} "
            f"{'client cpu':>10} {'sandbox cpu':>11} {'coverage':>9}"
        )
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            before = server_cpu()
            result = measure_floor(sandbox.base_url, settings, CLIENT_NO, concurrency)
            served = server_cpu() - before
            wall = result["seconds"]
            print(
                f"{concurrency:>4} {result['customers_per_s']:>12} {wall:>8.2f} {result['pages']:>6} "
                f"{result['api_calls']:>6} {result['slices']:>6} {result['client_cpu_share']:>10.0%} "
                f"{served / wall:>11.0%} {result['coverage']:>9}"
            )
            assert result["customers"] == args.customers, result

        bodies = asyncio.run(fetch_raw_pages(settings, CLIENT_NO, 10))
        print(
            f"\nparsing one {args.page_size}-customer page ({len(bodies[0]) / 1024:.0f} KiB), median of 5 rounds "
            f"over {len(bodies)} pages:"
        )
        for name, figures in compare_parsers(bodies).items():
            print(
                f"  {name:<32} {figures['ms_per_page']:>7.2f} ms/page {figures['customers_per_s']:>9} customers/s"
            )

        if args.profile:
            result = asyncio.run(measure_floor_async(sandbox.base_url, settings, CLIENT_NO, 4, profile=True))
            print("\npyinstrument, one read at concurrency 4 (client process only):")
            print(result["profile"])


if __name__ == "__main__":
    main()
