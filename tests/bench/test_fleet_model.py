"""The fleet check's count of the cores a prediction may use (`bench/fleet.py`)."""

from __future__ import annotations

from bench.fleet import cores_free, cores_got


def _run(wall: float, others: float, customers: int = 1000, worker_us: float = 100.0) -> dict[str, float]:
    return {
        "wall_s": wall,
        "cores_used_by_others": others,
        "customers": customers,
        "worker_cpu_us": worker_us,
        "side_cpu_us": 100.0,
    }


def test_a_quiet_machine_leaves_nearly_every_core_free_whatever_one_run_used() -> None:
    runs = {"small": _run(1.0, 0.04), "large": _run(4.0, 0.04, customers=20_000)}
    assert abs(cores_free(runs, 2) - 1.96) < 1e-9
    # one run at a time used less than a core and a half of the two: not what is free
    assert cores_got(runs) < 1.0 < cores_free(runs, 2)


def test_cores_other_work_uses_are_not_free_weighted_by_wall_time() -> None:
    runs = {"small": _run(1.0, 1.0), "large": _run(3.0, 1.6)}
    assert abs(cores_free(runs, 2) - (2 - (1.0 * 1 + 1.6 * 3) / 4)) < 1e-9
    assert cores_free({"r": _run(2.0, 2.5)}, 2) == 0.1  # never none: the runs did get some CPU
