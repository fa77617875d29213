"""The test kit: what the test suites and the benchmarks share, in one importable place.

- `broker`: a real local Kafka broker (`scripts/kafka_local.py`) started, stopped and restarted;
- `worker`: the worker as a separate process, and its environment;
- `kafka`: requests sent, output topics read (read_committed), the snapshot changelog read;
- `sandbox`: the sandbox's test controls (seeded changes, the customers as stored);
- `events`: the check applied to every event a test reads (CloudEvents SDK + JSON Schema);
- `oracle`: the exactly-once oracle (every true change exactly once, nothing else, one result per
  request, the snapshot equal to the API).

It is a top-level package rather than a part of `tests/` because `bench/` uses it too and must
not import test modules (`tests/README.md`). It is not shipped: the wheel holds `service/` only.
"""
