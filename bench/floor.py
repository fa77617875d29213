"""The floor in a process of its own: `bench.client_bench.measure_floor` (fetch + parse of every page
of one client with the Amili client alone), printed as one JSON line.

    .venv/bin/python -m bench.floor --base-url URL --token-url URL --client-id ID --client-secret S \\
        --client 9001 --concurrency 4 [--gc worker|default]

`--gc worker` (the default) applies the worker's garbage-collector tuning
(`service.entrypoints.engine.tune_gc`) first, so the floor and the worker run under the same interpreter
settings and the ratio measures the worker's own work; `--gc default` leaves Python's defaults.
"""

from __future__ import annotations

import argparse
import json

from bench.client_bench import measure_floor
from service.config import ApiSettings
from service.logs import configure_logging


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
    a = p.parse_args()
    configure_logging("json", "WARNING")
    if a.gc == "worker":
        try:
            from service.tuning import tune_gc
        except ImportError:  # a tree from before the tuning (bench "before" runs): the same settings
            import gc

            def tune_gc() -> None:
                gc.freeze()
                gc.set_threshold(50_000, 10, 10)

        tune_gc()
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
    result = measure_floor(a.base_url, settings, a.client, a.concurrency)
    result["gc"] = a.gc
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
