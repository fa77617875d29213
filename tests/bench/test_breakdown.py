"""The per-customer breakdown's attribution of py-spy samples (`bench/breakdown.py`), on synthetic
stacks in py-spy's raw format: each sample goes to the part of its innermost frame that a rule names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.breakdown import PARTS, breakdown, part_of_stack, read_profile

ROOT = Path(__file__).resolve().parents[2]
LOOP = "run (asyncio/runners.py:118);BaseEventLoop._run_once (asyncio/base_events.py:1922);Handle._run (asyncio/events.py:80)"
ENGINE = f"{LOOP};SyncEngine._read (service/engine/run.py:210)"


def engine_line(text: str) -> int:
    """The number of the first line of service/engine/run.py that contains `text` (the rules read it)."""
    lines = (ROOT / "service/engine/run.py").read_text().splitlines()
    return next(i for i, line in enumerate(lines, 1) if text in line)


@pytest.mark.parametrize(
    ("stack", "part"),
    [
        # a library called from project code goes to the caller's part (pydantic has no part of its own)
        (
            f"{LOOP};parse_list (service/amili/parsing.py:81);BaseModel.model_validate_json (pydantic/main.py:847)",
            "decode",
        ),
        (
            f"{ENGINE};build_event (service/sync/events.py:123);BaseModel.__init__ (pydantic/main.py:212)",
            "event",
        ),
        # libraries with a part of their own win over their caller
        (f"{LOOP};Caller.call (service/amili/_http.py:170);AsyncClient.send (httpx/_client.py:1617)", "HTTP"),
        (f"{LOOP};Sender._sender_routine (aiokafka/producer/sender.py:120)", "Kafka"),
        (f"{ENGINE};SnapshotStore.get_raw_states (service/snapshot/store.py:200)", "SQLite"),
        (f"{LOOP};CustomerRead._accept (service/amili/reader.py:553)", "reader"),
        (f"{ENGINE};stores_state (service/sync/records.py:75)", "diff"),
        (f"{ENGINE};encode_state (service/sync/records.py:65)", "event"),
        (f"{ENGINE};customer_state (service/engine/extract.py:50)", "state"),
        (f"{ENGINE};diff_customer (service/sync/diff.py:53)", "diff"),
        (f"{LOOP};BaseEventLoop._run_once (asyncio/base_events.py:1900)", "other"),
    ],
)
def test_a_sample_goes_to_the_part_its_innermost_named_frame_names(stack: str, part: str) -> None:
    assert part_of_stack(stack.split(";")) == part


@pytest.mark.parametrize(
    ("text", "part"),
    [
        ("customer_state(", "state"),
        ("stores_state(", "diff"),
        ("build_event(", "event"),
        ("pipeline.submit", "Kafka"),
    ],
)
def test_a_line_of_the_engine_loop_goes_by_its_text(text: str, part: str) -> None:
    frame = f"SyncEngine._commit_customers (service/engine/run.py:{engine_line(text)})"
    assert part_of_stack([*LOOP.split(";"), frame]) == part


def test_parts_are_shares_of_the_kernel_cpu_time_and_the_waits_make_up_the_wall(tmp_path: Path) -> None:
    profile = tmp_path / "profile.txt"
    profile.write_text(
        f'process 1:"python -m service run";{LOOP};parse_list (service/amili/parsing.py:81) 60\n'
        f'process 1:"python -m service run";{ENGINE};SnapshotStore.apply (service/snapshot/store.py:304) 40\n'
    )
    assert read_profile(profile) == {"decode": 60, "SQLite": 40}
    # 100 samples at 100 Hz = 1 s busy; the kernel counted 0.5 s CPU; the run took 2 s for 1,000 customers
    b = breakdown(profile, 1000, 100, cpu_s=0.5, wall_s=2.0)
    assert set(b["us_per_customer"]) == set(PARTS)
    assert b["us_per_customer"]["decode"] == 300.0 and b["us_per_customer"]["SQLite"] == 200.0
    assert b["cpu_us"] == 500.0 and b["sampled_busy_us"] == 1000.0
    assert b["waiting_for_cpu_us"] == 500.0 and b["idle_us"] == 1000.0
    assert b["cpu_us"] + b["waiting_for_cpu_us"] + b["idle_us"] == b["wall_us"] == 2000.0
