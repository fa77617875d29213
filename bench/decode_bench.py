"""Micro-benchmark of decoding list pages and reading the tracked state: µs per customer.

    .venv/bin/python -m bench.decode_bench [--pages 10] [--page-size 1000] [--rounds 7]

Pages are rendered in-process as the sandbox serves them (`service.sandbox`: the generated customers
of one client, with the summary of a list answer), so no HTTP and no sandbox process is involved.
Each line is the median over `--rounds` of decoding every page once:

- `orjson.loads` (dicts, no models): the raw floor's decoder;
- `msgspec.json.decode` (dicts, no models): the same without types;
- `pydantic model_validate_json`: the tolerant models alone (how every page was read before the
  strict decoder; `parsing.parse_list_tolerant` adds the conversion to structs to this);
- `parse_list`: what the worker and the client floor use (the strict decoder, one struct per
  customer, every bound checked);

and for the tracked state of every customer of those pages (`customer_state` with the default
groups), and the whole unchanged check of the engine (state, its JSON, the comparison with the
stored bytes, see `service.engine.run`):

- `state: pydantic models (before)` and `unchanged check (before)`: the engine's extraction as it
  was when it read pydantic models;
- `state: structs (now)` and `unchanged check (now)`: as it is now.

Times are CPU seconds of this process under the worker's garbage-collector settings
(`service.tuning.tune_gc`). Last, what one decoded page holds in memory (tracemalloc) and how many of its objects the cyclic GC
tracks (structs are not tracked; their lists are). The machine is shared: compare the lines of one run with each other, not across runs.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import msgspec
import orjson
from pydantic import BaseModel

from service.amili import _tolerant as tolerant
from service.amili.models import DECLARED_FIELDS
from service.amili.parsing import parse_list
from service.engine.extract import customer_state
from service.sandbox.store import ClientData
from service.sync.records import encode_state, stores_state
from service.sync.state import SCALARS, TrackingRules, normalize
from service.tuning import tune_gc

CLIENT_NO = 2218


def render_pages(pages: int, page_size: int, seed: int = 1) -> list[bytes]:
    """List answers of the sandbox's generated customers, as its API renders them."""
    client = ClientData(CLIENT_NO, pages * page_size, seed)
    bodies = []
    for page_no in range(1, pages + 1):
        customers = [client.generate(i) for i in range((page_no - 1) * page_size, page_no * page_size)]
        summary = {
            "pageNo": page_no,
            "currentPageSize": len(customers),
            "pageSizeLimit": page_size,
            "totalPages": pages,
            "totalCount": pages * page_size,
            "maximumCount": 10_000,
            "nextPage": f"https://arm.test/clients/{CLIENT_NO}/customers?query=q&pageno={page_no + 1}",
            "lastPage": f"https://arm.test/clients/{CLIENT_NO}/customers?query=q&pageno={pages}",
            "queryId": "q",
        }
        bodies.append(orjson.dumps({"summary": summary, "customers": customers}))
    return bodies


def _pydantic_state(customer: Any, names: tuple[str, ...], declared: frozenset[str]) -> dict[str, Any]:
    """The engine's state extraction as it read pydantic models (kept here to compare with)."""
    values = customer.__dict__
    extra = customer.__pydantic_extra__
    state: dict[str, Any] = {}
    for name in names:
        value = values.get(name) if name in declared else (extra.get(name) if extra else None)
        if value is None or value == "":
            continue
        if type(value) not in SCALARS:
            value = _pydantic_model_state(value) if isinstance(value, BaseModel) else normalize(value)
            if value is None:
                continue
        state[name] = value
    return state


def _pydantic_model_state(model: BaseModel) -> Any:
    extra = model.__pydantic_extra__
    items = {**model.__dict__, **extra}.items() if extra else model.__dict__.items()
    out: dict[str, Any] = {}
    for key, value in items:
        if value is None or value == "":
            continue
        if type(value) not in SCALARS:
            return normalize(model.model_dump(mode="json"))
        out[key] = value
    return out or None


def median_us(run: Callable[[], object], customers: int, rounds: int) -> float:
    """The median over `rounds` of `run`'s CPU time, in µs per customer (also `bench.event_bench`'s)."""
    times = []
    for _ in range(rounds):
        start = time.process_time()
        run()
        times.append(time.process_time() - start)
    return statistics.median(times) / customers * 1e6


def measure(bodies: list[bytes], rounds: int) -> dict[str, float]:
    """µs per customer of each way (see the module's docstring)."""
    customers = sum(len(orjson.loads(b)["customers"]) for b in bodies)
    names = TrackingRules().state_fields()
    structs = [c for b in bodies for c in parse_list(b).customers]
    models = [c for b in bodies for c in tolerant.CustomerList.model_validate_json(b).customers]
    declared_models = frozenset(tolerant.Customer.model_fields)
    stored = [encode_state(customer_state(c, names, DECLARED_FIELDS), 3) for c in structs]
    assert all(
        customer_state(s, names, DECLARED_FIELDS) == _pydantic_state(m, names, declared_models)
        for s, m in zip(structs, models, strict=True)
    ), "the struct and pydantic states differ"

    def unchanged() -> None:
        for c, raw in zip(structs, stored, strict=True):
            assert stores_state(raw, orjson.dumps(customer_state(c, names, DECLARED_FIELDS)))

    def unchanged_before() -> None:
        for m, raw in zip(models, stored, strict=True):
            assert stores_state(raw, orjson.dumps(_pydantic_state(m, names, declared_models)))

    ways: dict[str, Callable[[], object]] = {
        "decode: orjson.loads (dicts, no models)": lambda: [orjson.loads(b) for b in bodies],
        "decode: msgspec.json.decode (dicts, no models)": lambda: [msgspec.json.decode(b) for b in bodies],
        "decode: pydantic model_validate_json (before)": lambda: [
            tolerant.CustomerList.model_validate_json(b) for b in bodies
        ],
        "decode: parse_list, msgspec structs (now)": lambda: [parse_list(b) for b in bodies],
        "state: pydantic models (before)": lambda: [
            _pydantic_state(m, names, declared_models) for m in models
        ],
        "state: structs (now)": lambda: [customer_state(c, names, DECLARED_FIELDS) for c in structs],
        "unchanged check: state + JSON + compare (before)": unchanged_before,
        "unchanged check: state + JSON + compare (now)": unchanged,
    }
    return {name: median_us(run, customers, rounds) for name, run in ways.items()}


def page_footprint(body: bytes) -> dict[str, tuple[int, int]]:
    """(KiB allocated, objects tracked by the cyclic GC) of one decoded page, before and now."""
    ways: dict[str, Callable[[], object]] = {
        "pydantic models (before)": lambda: tolerant.CustomerList.model_validate_json(body),
        "structs (now)": lambda: parse_list(body),
    }
    out = {}
    for name, decode in ways.items():
        gc.collect()
        tracked = len(gc.get_objects())
        tracemalloc.start()
        page = decode()
        size = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        out[name] = (size // 1024, len(gc.get_objects()) - tracked)
        del page
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pages", type=int, default=10)
    p.add_argument("--page-size", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    tune_gc()  # the worker's garbage-collector settings (the floor's process gets them too)
    bodies = render_pages(args.pages, args.page_size)
    size = sum(map(len, bodies)) / len(bodies) / 1024
    print(
        f"{args.pages} pages of {args.page_size} customers ({size:.0f} KiB each), median of {args.rounds} rounds"
    )
    results = measure(bodies, args.rounds)
    raw = results["decode: orjson.loads (dicts, no models)"]
    for name, us in results.items():
        ratio = f"{raw / us:6.2f} x orjson.loads" if name.startswith("decode") else ""
        print(f"  {name:<50} {us:7.2f} µs/customer  {ratio}")
    print("one decoded page held in memory:")
    for name, (kib, tracked) in page_footprint(bodies[0]).items():
        print(f"  {name:<50} {kib:7,} KiB, {tracked:,} objects tracked by the GC")


if __name__ == "__main__":
    main()
