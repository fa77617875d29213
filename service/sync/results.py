"""The run result published on the results topic, one per request."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# A result stays a few kB whatever failed: an error text is cut to this many characters (the full
# text is in the worker's log line of the failure).
MAX_ERROR_CHARS = 2000


def bounded_error(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 1] + "…"


# Alike config's StrEnums in shape only: this is the run-result contract's vocabulary.
class RunStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SUPERSEDED = "superseded"
    REMOVALS_HELD = "removals_held"


class RunResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requestId: str
    clientNo: int
    status: RunStatus
    counts: dict[str, int] = Field(default_factory=dict, description="events published per change type")
    pages: int = 0
    slices: int = 0
    customersRead: int = 0
    coverage: str | None = Field(None, description="proven, unproven or incomplete (null: not read)")
    coverageGaps: list[str] = Field(
        default_factory=list, description="customers missed by the read but found by GET-one (a sample)"
    )
    coverageGapCount: int = Field(0, description="how many customers the read missed (GET-one found them)")
    removalsHeld: int = 0
    filters: dict[str, str] = Field(default_factory=dict)
    reason: str | None = None
    startedAt: datetime
    finishedAt: datetime
    durationSeconds: float
    error: str | None = None
    retries: dict[str, Any] = Field(default_factory=dict)
    apiRequests: int = Field(
        0, description="HTTP requests the read sent (retries and slicing probes included)"
    )
    requestsPer1000: float | None = Field(None, description="apiRequests per 1,000 customers read")
    unreachable: int | None = Field(
        None, description="customers the API counts that the read could not reach (null: totals capped)"
    )
    sliceGapCount: int = Field(0, description="gaps the slicing detected")
    sliceGaps: list[dict[str, Any]] = Field(
        default_factory=list,
        description="a sample of the slicing's gaps (kind, slice, missing), a few kB at most",
    )
