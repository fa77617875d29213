"""Dead-letter records: the request's bytes as they came, the reason in headers."""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord

from service.config import Settings
from service.engine.ports import OutRecord

__all__ = ["MAX_REASON_CHARS", "dlq_record"]

MAX_REASON_CHARS = 2000


def dlq_record(settings: Settings, record: ConsumerRecord[Any, Any], code: str, reason: str) -> OutRecord:
    headers = [(k, v) for k, v in (record.headers or []) if not k.startswith("dlq-")]
    headers += [
        ("dlq-error-code", code.encode()),
        ("dlq-error", reason[:MAX_REASON_CHARS].encode()),
        ("dlq-source-topic", record.topic.encode()),
        ("dlq-source-partition", str(record.partition).encode()),
        ("dlq-source-offset", str(record.offset).encode()),
    ]
    return OutRecord(settings.topics.dlq_topic, record.key, record.value, headers)
