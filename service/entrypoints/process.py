"""What every entry point applies once at start-up, before the first run: process tuning and
FastStream's logs routed through structlog."""

from __future__ import annotations

import faststream

from service.kafka.publisher import shorten_transaction_backoff
from service.logs import route_through_root
from service.tuning import tune_allocator, tune_gc

__all__ = ["tune_process"]


def tune_process() -> None:
    shorten_transaction_backoff()
    tune_gc()
    tune_allocator()
    # FastStream installs its own stdout handler at import (done above) and stops propagation
    route_through_root(faststream.__name__, f"{faststream.__name__}.access")
