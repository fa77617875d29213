"""aiokafka connection arguments built from the settings (security protocol, SASL, SSL)."""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context

from service.config import KafkaSettings, SecurityProtocol


def connection_kwargs(kafka: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments shared by every aiokafka client of the service."""
    kwargs: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap_servers,
        "security_protocol": kafka.security_protocol.value,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL):
        kwargs["ssl_context"] = create_ssl_context(cafile=str(kafka.ssl_cafile) if kafka.ssl_cafile else None)
    if kafka.security_protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        assert kafka.sasl_mechanism is not None and kafka.password is not None  # checked by the settings
        kwargs["sasl_mechanism"] = kafka.sasl_mechanism.value
        kwargs["sasl_plain_username"] = kafka.username
        kwargs["sasl_plain_password"] = kafka.password.get_secret_value()
    return kwargs


class KafkaConnectionError(Exception):
    """The broker could not be reached or refused the credentials. Never carries the password."""


def describe_connection_error(kafka: KafkaSettings, exc: BaseException | str) -> str:
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    who = f" as {kafka.username!r}" if kafka.username else ""
    return (
        f"cannot connect to Kafka at {kafka.bootstrap_servers} ({kafka.security_protocol.value}"
        f"{'/' + kafka.sasl_mechanism.value if kafka.sasl_mechanism else ''}){who}: {text}"
    )


async def check_connection(kafka: KafkaSettings, timeout: float = 15.0) -> None:
    """Connect with an admin client and list the cluster; raise `KafkaConnectionError` (no password) on failure."""
    import asyncio
    import logging

    from aiokafka.admin import AIOKafkaAdminClient

    # aiokafka logs the broker's reason (e.g. SaslAuthenticationFailed) and raises a bare
    # "Unable to bootstrap": keep the logged reason for the error message.
    reasons: list[str] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            reasons.append(record.getMessage())

    handler = _Keep(logging.ERROR)
    logging.getLogger("aiokafka").addHandler(handler)
    admin = AIOKafkaAdminClient(**connection_kwargs(kafka), client_id=f"{kafka.client_id}-check")
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.describe_cluster(), timeout)
    except Exception as exc:
        detail = f" ({reasons[-1]})" if reasons else ""
        message = describe_connection_error(kafka, exc) + detail
        if kafka.password is not None:
            message = message.replace(kafka.password.get_secret_value(), "***")
        raise KafkaConnectionError(message) from None
    finally:
        logging.getLogger("aiokafka").removeHandler(handler)
        await admin.close()
