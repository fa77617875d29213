"""The floors in a process of their own, printed as one JSON line.

    .venv/bin/python -m bench.floor --base-url URL --token-url URL --client-id ID --client-secret S \\
        --client 9001 --concurrency 4 [--gc worker|default] [--record PLAN.json | --raw PLAN.json]

Client floor (the default): `bench.client_bench.measure_floor`, fetch + parse of every page of one
client with the Amili client alone; `--record` writes the list requests it sent (`bench.raw_floor`);
`--known-names` teaches its slicing planner what the worker's state teaches the worker's: the name
prefixes the worker's last read left (a JSON object, `NamePrefixes`), or the snapshot's names (a
JSON list) for a tree from before them. After a first sync the worker learns from them, so the
floor must too to read the same slices. Either is turned into the planner's prefixes inside the
timing, as in the worker: milliseconds for the prefixes, ~0.2 s for 100,000 names.
Raw floor (`--raw PLAN.json`): the same requests replayed with plain httpx, each answer decoded with
`orjson.loads` and nothing else (`bench.raw_floor.replay`).

`--gc worker` (the default) applies the worker's own start-up tuning first
(`service.entrypoints.process.tune_process`: the garbage collector's thresholds and freeze, the
producer's backoff), so both floors and the worker run under the same interpreter settings and a
ratio measures the work, not the settings; `--gc default` leaves Python's defaults.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.client_bench import measure_floor
from bench.raw_floor import ListRecorder, replay
from service.amili.models import NamePrefixes
from service.config import ApiSettings
from service.logs import configure_logging


def tune_like_the_worker() -> None:
    try:
        from service.entrypoints.process import tune_process
    except ImportError:  # a tree from before the entry points' tuning (bench "before" runs)
        import gc

        def tune_process() -> None:
            gc.freeze()
            gc.set_threshold(50_000, 10, 10)

    tune_process()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base-url", required=True)
    p.add_argument("--token-url", required=True)
    p.add_argument("--client-id", required=True)
    p.add_argument("--client-secret", required=True)
    p.add_argument("--client", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--gc", choices=("worker", "default"), default="worker")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--record", type=Path, help="client floor: write the list requests it sent here")
    mode.add_argument("--raw", type=Path, help="raw floor: replay these recorded requests")
    p.add_argument(
        "--known-names", type=Path, help="client floor: a JSON list of names that teach the slicing planner"
    )
    a = p.parse_args()
    configure_logging("json", "WARNING")
    if a.gc == "worker":
        tune_like_the_worker()
    settings = ApiSettings(
        base_url=a.base_url,
        token_url=a.token_url,
        client_id=a.client_id,
        client_secret=a.client_secret,
        concurrency=a.concurrency,
        page_size=a.page_size,
        rate_limit=1000,
        retry_wait_initial=0.05,
    )
    if a.raw is not None:
        result = replay(settings, a.client, json.loads(a.raw.read_text()))
        result["kind"] = "raw"
    else:
        recorder = ListRecorder() if a.record is not None else None
        taught = json.loads(a.known_names.read_text()) if a.known_names is not None else []
        if isinstance(taught, dict):
            prefixes = NamePrefixes(taught["prefixes"], taught["customers"])
            result = measure_floor(a.base_url, settings, a.client, a.concurrency, recorder, prefixes=prefixes)
        else:
            result = measure_floor(a.base_url, settings, a.client, a.concurrency, recorder, taught)
        result["kind"] = "client"
        if recorder is not None and a.record is not None:
            a.record.write_text(json.dumps(recorder.plan()))
            result["recorded_requests"] = recorder.requests
    result["gc"] = a.gc
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
