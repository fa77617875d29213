"""The sync engine: one run per request, behind ports (`ports.py`), with no adapter of its own.

`run.py` holds the run as named steps; `transactions.py` the ordered page transactions and the
cache writes after them; `reconcile.py` what happens to customers the read did not see;
`extract.py` the tracked state read from an API model (the hot path).
"""

from .ports import (
    Committed,
    CustomerSource,
    CustomerStream,
    OutRecord,
    Publisher,
    RequestPosition,
    SnapshotCache,
)
from .run import ProgressCallback, SyncEngine

__all__ = [
    "Committed",
    "CustomerSource",
    "CustomerStream",
    "OutRecord",
    "ProgressCallback",
    "Publisher",
    "RequestPosition",
    "SnapshotCache",
    "SyncEngine",
]
