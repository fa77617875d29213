"""Logging: structlog, JSON in containers, readable on a terminal, secrets and personal numbers masked.

Every log line passes `mask_sensitive`: values under secret-looking keys (token, password, secret,
authorization, client_secret, ssn, dateOfBirth) become "***", and any 11-digit run that looks like a
Norwegian national id inside a string value is replaced too, wherever it appears. Request filter
values are personal data (a `name` filter is a person's name): under a `filters`/`filter` key the
filter names stay and their values become "***", and in a `slice` description (`slice name='Ola'`)
the quoted values do too.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog

MASK = "***"
_SECRET_KEY = re.compile(
    r"(token|password|passwd|secret|authorization|client_secret|api_key|apikey|ssn|dateofbirth|date_of_birth)",
    re.IGNORECASE,
)
# 11 digits not inside a longer digit run: a national id (fødselsnummer) or D-number.
# A UUID (a request id) may hold such a run in its last group: UUIDs are matched first and kept.
_NATIONAL_ID = re.compile(
    r"(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)"
    r"|(?<!\d)\d{6}[ ]?\d{5}(?!\d)"
)


def _mask_national_id(match: re.Match[str]) -> str:
    return match.group(0) if match.group("uuid") else MASK


_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_FILTER_KEY = re.compile(r"^(filters?|filter_query|slice_filters)$", re.IGNORECASE)
_SLICE_KEY = re.compile(r"^slice$", re.IGNORECASE)
_QUOTED_VALUE = re.compile(r"""(=)('[^']*'|"[^"]*")""")


def mask_filters(value: Any) -> Any:
    """Filter names kept, values masked: {"name": "Ola"} -> {"name": "***"}."""
    if isinstance(value, Mapping):
        return {k: (MASK if v is not None else None) for k, v in value.items()}
    return MASK if value else value


def mask_value(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return _BEARER.sub(r"\1" + MASK, _NATIONAL_ID.sub(_mask_national_id, value))
    if depth > 6:
        return value
    if isinstance(value, Mapping):
        return {
            k: (
                MASK
                if _is_secret_key(k)
                else mask_filters(v)
                if isinstance(k, str) and _FILTER_KEY.match(k)
                else mask_value(v, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [mask_value(v, depth + 1) for v in value]
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEY.search(key))


def mask_sensitive(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets and personal numbers in every key and value."""
    for key in list(event_dict):
        value = event_dict[key]
        if _is_secret_key(key) and value is not None:
            event_dict[key] = MASK
        elif _FILTER_KEY.match(key):
            event_dict[key] = mask_filters(value)
        elif _SLICE_KEY.match(key) and isinstance(value, str):
            event_dict[key] = _QUOTED_VALUE.sub(r"\1" + MASK, value)
        else:
            event_dict[key] = mask_value(value)
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Set up structlog (and route stdlib logging through it). `fmt`: auto, json or console."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_sensitive,
    ]
    renderer: Any
    if use_json:
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared[:2],
            *shared[2:],
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka is chatty about harmless first-use races (leader not available, coordinator loading)
    logging.getLogger("aiokafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("httpx").setLevel(logging.WARNING)


def route_through_root(*names: str) -> None:
    """Send the named stdlib loggers' records to the root handler (structlog's formatter): for
    libraries that install a handler of their own and stop propagation (FastStream does, at import)."""
    for name in names:
        lib_logger = logging.getLogger(name)
        lib_logger.handlers.clear()
        lib_logger.propagate = True


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
