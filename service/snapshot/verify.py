"""Whether the local cache of a snapshot partition may be caught up from its checkpoint, or must be
wiped and restored from the beginning.

A cache is "the changelog up to its checkpoint". Catching up from the checkpoint is right only if
every record written since is still in the log. It is not when:

- the checkpoint is past the partition's end offset: the topic was deleted and recreated (or the
  cache belongs to another cluster), so its rows describe a log that no longer exists;
- the checkpoint is below the partition's log-start offset: records after it were deleted;
- the partition was owned by another worker since the checkpoint last moved, longer ago than the
  topic's `delete.retention.ms`: compaction may have removed a tombstone written meanwhile, and the
  row it deleted would stay in the cache (a customer "removed" twice). Removals are markers, not
  tombstones, since the marker format exists; the rule also covers tombstones of older versions and
  any written by hand. A checkpoint at the end offset is current however old it is (nothing was
  written since), and a worker that owned the partition throughout keeps its checkpoint moving.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

__all__ = ["DEFAULT_DELETE_RETENTION_MS", "PartitionLog", "delete_retention_ms", "stale_reason"]

# Kafka's default `delete.retention.ms` (one day), used when the topic's value cannot be read.
DEFAULT_DELETE_RETENTION_MS = 86_400_000


@dataclass(frozen=True)
class PartitionLog:
    """Offsets of one snapshot partition as the broker reports them."""

    log_start: int
    log_end: int


def stale_reason(
    checkpoint: int,
    checkpoint_time: float | None,
    log: PartitionLog,
    *,
    retention_ms: int,
    now: float,
    new_ownership: bool,
) -> str | None:
    """Why the cache of a partition must be wiped before it is restored, or None when catching up
    from `checkpoint` is enough. `checkpoint_time`: when the checkpoint last moved (epoch seconds)."""
    if checkpoint > log.log_end:
        return f"checkpoint {checkpoint} is past the end offset {log.log_end} (topic recreated?)"
    if 0 < checkpoint < log.log_start:
        return f"checkpoint {checkpoint} is behind the log start offset {log.log_start}"
    if (
        new_ownership
        and checkpoint < log.log_end
        and checkpoint_time is not None
        and (now - checkpoint_time) * 1000 > retention_ms
    ):
        return (
            f"checkpoint last advanced {round(now - checkpoint_time)} s ago, longer than the topic's "
            f"delete.retention.ms ({retention_ms} ms): tombstones written since may be compacted away"
        )
    return None


async def delete_retention_ms(admin: AIOKafkaAdminClient, topic: str) -> int:
    """The topic's `delete.retention.ms` (Kafka's default when it cannot be read)."""
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
        entries = {e[0]: e[1] for e in response.resources[0][4]}
        return int(entries.get("delete.retention.ms") or DEFAULT_DELETE_RETENTION_MS)
    except (ValueError, IndexError, TypeError):
        return DEFAULT_DELETE_RETENTION_MS
