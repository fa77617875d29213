"""FastStream's security object for the configured Kafka connection (SASL, TLS)."""

from __future__ import annotations

from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

from service.config import SaslMechanism, SecurityProtocol, Settings
from service.kafka.connection import connection_kwargs

__all__ = ["faststream_security"]


def faststream_security(settings: Settings) -> BaseSecurity | None:
    kafka = settings.kafka
    ssl_context = connection_kwargs(kafka).get("ssl_context")
    use_ssl = kafka.security_protocol in (SecurityProtocol.SSL, SecurityProtocol.SASL_SSL)
    if kafka.security_protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
        assert kafka.username is not None
        assert kafka.password is not None
        cls = {
            SaslMechanism.PLAIN: SASLPlaintext,
            SaslMechanism.SCRAM_SHA_256: SASLScram256,
            SaslMechanism.SCRAM_SHA_512: SASLScram512,
        }[kafka.sasl_mechanism or SaslMechanism.PLAIN]
        return cls(
            kafka.username, kafka.password.get_secret_value(), ssl_context=ssl_context, use_ssl=use_ssl
        )
    if use_ssl:
        return BaseSecurity(ssl_context=ssl_context, use_ssl=True)
    return None
