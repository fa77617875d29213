"""Settings: every knob of the service, read from `AMILI_SYNC_*` environment variables or `.env`.

Nested groups use `__`: `AMILI_SYNC_KAFKA__BOOTSTRAP_SERVERS`, `AMILI_SYNC_API__BASE_URL`.
`.env.example` and the README's configuration table are generated from this module
(`amili-sync config --env-example` / `--markdown`); a test fails when they drift.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.sync import kinds

ENV_PREFIX = "AMILI_SYNC_"
NESTED_DELIMITER = "__"

# Default name-prefix slicing alphabet: digits, Latin and Norwegian letters. The name-prefix strategy
# always adds the punctuation names are seen to start with (service/amili/slicing.py).
DEFAULT_SLICE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZÆØÅ"


class SecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class SaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class KafkaSettings(_Group):
    bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port]"
    )
    client_id: str = Field(
        "amili-customer-sync", description="Kafka client id (also the transactional.id prefix)"
    )
    security_protocol: SecurityProtocol = Field(
        SecurityProtocol.PLAINTEXT, description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: SaslMechanism | None = Field(
        None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (SASL protocols only)"
    )
    username: str | None = Field(None, description="SASL user name")
    password: SecretStr | None = Field(None, description="SASL password (secret)")
    ssl_cafile: Path | None = Field(None, description="CA bundle that signs the brokers' certificates (SSL)")
    group_id: str = Field("amili-customer-sync", description="Consumer group of the request consumer")
    group_instance_id: str | None = Field(
        None,
        description="Static group membership id (e.g. a StatefulSet pod name): a restarted worker gets its "
        "partitions back at once instead of after the session timeout",
    )
    max_poll_interval_ms: int = Field(
        3_600_000, gt=0, description="Longest run a request may take before the group evicts the worker"
    )
    session_timeout_ms: int = Field(10_000, gt=0, description="Consumer session timeout")
    rebalance_timeout_ms: int = Field(
        90_000, gt=0, description="Time a rebalance waits for a running page transaction to finish"
    )
    request_timeout_ms: int = Field(
        120_000, gt=0, description="Kafka request timeout (above the rebalance timeout)"
    )
    transaction_timeout_ms: int = Field(
        60_000, gt=0, description="Broker aborts a transaction left open this long"
    )

    @model_validator(mode="after")
    def _sasl_needs_credentials(self) -> KafkaSettings:
        if self.security_protocol in (SecurityProtocol.SASL_PLAINTEXT, SecurityProtocol.SASL_SSL):
            if self.sasl_mechanism is None:
                raise ValueError("sasl_mechanism is required with a SASL security protocol")
            if not self.username or self.password is None:
                raise ValueError("username and password are required with a SASL security protocol")
        return self


class TopicManagement(StrEnum):
    CREATE = "create"
    VERIFY = "verify"


class TopicSettings(_Group):
    prefix: str = Field("amili.customers", description="Prefix of every topic name")
    partitions: int = Field(6, ge=1, description="Partitions of topics the worker creates")
    replication_factor: int = Field(1, ge=1, description="Replication factor of topics the worker creates")
    fetch_requests: str = Field("fetch-requests", description="Request topic (after the prefix)")
    dlq: str = Field("fetch-requests.dlq", description="Dead-letter topic for bad requests")
    snapshot: str = Field("snapshot", description="Compacted snapshot changelog topic")
    # the event topics' defaults come from the event-kind registry (service/sync/kinds.py)
    balance_changed: str = Field(kinds.BALANCE.default_topic, description="Balance change events")
    address_changed: str = Field(kinds.ADDRESS.default_topic, description="Postal address change events")
    registration_status_changed: str = Field(
        kinds.REGISTRATION_STATUS.default_topic, description="Registration status change events"
    )
    lifecycle: str = Field(kinds.LIFECYCLE, description="created / removed / baseline events")
    sync_results: str = Field("sync-results", description="One run result per request")
    manage: TopicManagement = Field(
        TopicManagement.CREATE,
        description="create: the worker creates missing topics at start; verify: it only checks them "
        "(existence, equal request/snapshot partitions, compacted snapshot) and refuses to start otherwise",
    )

    def name(self, suffix: str) -> str:
        return f"{self.prefix}.{suffix}" if self.prefix else suffix

    # One named property per topic (alike, kept): call sites read `topics.dlq_topic`, not a lookup.
    @property
    def requests_topic(self) -> str:
        return self.name(self.fetch_requests)

    @property
    def dlq_topic(self) -> str:
        return self.name(self.dlq)

    @property
    def snapshot_topic(self) -> str:
        return self.name(self.snapshot)

    @property
    def results_topic(self) -> str:
        return self.name(self.sync_results)

    @property
    def lifecycle_topic(self) -> str:
        return self.name(self.lifecycle)

    def kind_topic(self, kind: kinds.EventKind) -> str:
        """Full topic of an event kind: its topic setting, or the name derived for a custom group."""
        suffix = getattr(self, kind.topic_setting) if kind.topic_setting else kind.default_topic
        return self.name(str(suffix))

    def event_topic(self, group: str) -> str:
        """Full topic of a tracked group's events (`balance`, a custom group ...) or of `lifecycle`."""
        return self.kind_topic(kinds.topic_kind(group))

    def event_topics(self, groups: Iterable[str]) -> list[str]:
        """The topics of these tracked groups' events and the lifecycle topic, in order."""
        return list(dict.fromkeys(self.event_topic(g) for g in kinds.topic_groups(groups)))

    def all_topics(self, groups: Iterable[str]) -> list[str]:
        """Every topic of a worker tracking these groups (`settings.sync.groups`)."""
        return [
            self.requests_topic,
            self.dlq_topic,
            self.snapshot_topic,
            *self.event_topics(groups),
            self.results_topic,
        ]


class SlicingStrategy(StrEnum):
    NAME_PREFIX = "name-prefix"
    FILTER_SETS = "filter-sets"


class CustomerNoSlicing(StrEnum):
    OFF = "off"
    ON = "on"
    AUTO = "auto"


class ApiSettings(_Group):
    # before base_url: its validator reads it
    allow_insecure_http: bool = Field(
        False, description="Allow plain http to a host that is not loopback (base and token URL)"
    )
    base_url: str = Field(
        "", description="ARM API base URL, ending in /arm/v1; https unless the host is loopback"
    )
    token: SecretStr | None = Field(None, description="Static bearer token (instead of client credentials)")
    token_url: str | None = Field(None, description="OAuth2 token URL for client credentials")
    client_id: str | None = Field(None, description="OAuth2 client id")
    client_secret: SecretStr | None = Field(None, description="OAuth2 client secret (secret)")
    scope: str | None = Field(None, description="OAuth2 scope, when the identity service wants one")
    resource: str | None = Field(None, description="OAuth2 resource, when the identity service wants one")
    audience: str | None = Field(None, description="OAuth2 audience, when the identity service wants one")
    accept_language: str | None = Field(None, description="Accept-Language header sent with every call")
    user_id: str | None = Field(None, description="userid query parameter sent with every call")
    page_size: int = Field(1000, ge=1, le=1000, description="Customers per page (API cap 1000)")
    maximum_count: int = Field(10_000, ge=1, le=10_000, description="Cap of one query (API cap 10000)")
    concurrency: int = Field(4, ge=1, le=64, description="Pages fetched at once")
    rate_limit: float = Field(50.0, gt=0, description="Client-wide limit, requests per second")
    connect_timeout: float = Field(5.0, gt=0, description="Connect timeout, seconds")
    read_timeout: float = Field(30.0, gt=0, description="Read timeout, seconds")
    retry_attempts: int = Field(8, ge=1, description="Attempts per call for 429, 5xx, timeouts and resets")
    retry_timeout: float = Field(300.0, gt=0, description="Total time budget of one call's retries, seconds")
    retry_wait_initial: float = Field(0.2, ge=0, description="First backoff wait, seconds")
    retry_wait_max: float = Field(30.0, ge=0, description="Longest backoff wait (Retry-After may ask more)")
    max_connections: int = Field(16, ge=1, description="HTTP keep-alive pool size")
    slicing: SlicingStrategy = Field(
        SlicingStrategy.NAME_PREFIX, description="How a truncated query is split: name-prefix or filter-sets"
    )
    slice_alphabet: str = Field(
        DEFAULT_SLICE_ALPHABET, description="First characters tried by name-prefix slicing"
    )
    slice_filter_sets: list[dict[str, str]] = Field(
        default_factory=list,
        description='JSON list of filter sets for filter-sets slicing, e.g. [{"customercategory":"CONS"}]',
    )
    slice_customerno: CustomerNoSlicing = Field(
        CustomerNoSlicing.AUTO,
        description="Split a slice that names cannot separate by customerno prefix: off, on (the API matches "
        "customerno as a prefix) or auto (asked once)",
    )

    @model_validator(mode="after")
    def _one_auth_mode(self) -> ApiSettings:
        if self.token_url and not (self.client_id and self.client_secret):
            raise ValueError("token_url needs client_id and client_secret")
        return self

    @field_validator("base_url", "token_url")
    @classmethod
    def _secure_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Plain http only to loopback (bearer tokens and secrets travel on it). An empty base URL is
        refused by `load_settings` for the commands that call the API (there is no default)."""
        if not value:
            return value
        url = urlsplit(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError("must be an http(s) URL with a host")
        insecure = url.scheme == "http" and not _loopback(url.hostname)
        if insecure and not info.data.get("allow_insecure_http"):
            raise ValueError(
                "plain http to a host that is not loopback is refused "
                "(use https, or set AMILI_SYNC_API__ALLOW_INSECURE_HTTP=true)"
            )
        return value


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SyncSettings(_Group):
    pages_per_transaction: int = Field(1, ge=1, description="API pages committed per Kafka transaction")
    learn_names_from_snapshot: bool = Field(
        True,
        description=(
            "Teach the slicing what the client's last read split (its name prefixes), or, before a first "
            "complete read, the names in the snapshot"
        ),
    )
    removal_hold_fraction: float = Field(
        0.2, ge=0, le=1, description="Removals above this share of the snapshot are held, not published"
    )
    include_personal_fields: bool = Field(
        False, description="Put ssn and dateOfBirth into events (off: never in events or logs)"
    )
    groups: dict[str, list[str]] = Field(
        default_factory=kinds.default_groups, description="Tracked groups: group -> customer fields (JSON)"
    )
    max_request_bytes: int = Field(65_536, gt=0, description="Larger request messages go to the DLQ")
    progress_interval: float = Field(5.0, gt=0, description="Seconds between progress log lines of a run")
    source: str = Field("urn:amili:arm", description="CloudEvents source attribute prefix")
    schema_base_url: str = Field(
        "https://schemas.amili-customer-sync.local/events", description="Base of the ce_dataschema URLs"
    )
    retry_attempts: int = Field(
        5,
        ge=1,
        description="Attempts at a request failing for a reason other than the API's answer, "
        "then a failed result and a DLQ record",
    )
    retry_backoff_initial: float = Field(
        1.0, gt=0, description="Seconds before the first retry of a request (doubles each time)"
    )
    retry_backoff_max: float = Field(
        60.0, gt=0, description="Most seconds between retries (requests, restores, producer starts)"
    )
    restore_process_from: int = Field(
        250_000,
        ge=0,
        description="Restores of at least this many records write the cache from a child process "
        "(a core of its own, no GIL shared with the fetching); smaller ones from a thread; 0: always a thread",
    )

    @field_validator("groups")
    @classmethod
    def _groups_are_event_kinds(cls, groups: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, fields in groups.items():
            kinds.check_group(name, fields)
        return groups


class LogFormat(StrEnum):
    AUTO = "auto"
    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED_DELIMITER,
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        env_ignore_empty=True,
        validate_default=True,
    )

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    topics: TopicSettings = Field(default_factory=TopicSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    sync: SyncSettings = Field(default_factory=SyncSettings)
    state_dir: Path = Field(Path("state"), description="Writable folder of the SQLite snapshot cache")
    log_format: LogFormat = Field(
        LogFormat.AUTO, description="auto (JSON unless on a terminal), json or console"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level")
    health_port: int = Field(
        8080, ge=0, le=65535, description="Port of /healthz, /readyz and /metrics (0: off)"
    )
    health_host: str = Field("0.0.0.0", description="Address the health/metrics server binds")


class SettingsError(Exception):
    """A setting is invalid. The message is one line naming the env variable and the problem."""


def load_settings(*, require_api: bool = False, **overrides: Any) -> Settings:
    """Read settings from the environment and `.env`; raise `SettingsError` with a one-line message.

    `require_api`: the command calls the Amili API, so `AMILI_SYNC_API__BASE_URL` must be set (it
    has no default: a default pointing at the sandbox would send a misconfigured worker's requests,
    with their credentials, to whatever listens there)."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
    if require_api and not settings.api.base_url:
        raise SettingsError(
            f"invalid setting {ENV_PREFIX}API{NESTED_DELIMITER}BASE_URL: is required "
            "(the Amili ARM API base URL, ending in /arm/v1)"
        )
    return settings


def describe_validation_error(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
        name = ENV_PREFIX + NESTED_DELIMITER.join(p.upper() for p in loc) if loc else "settings"
        msg = err["msg"].removeprefix("Value error, ")
        value = err.get("input")
        shown = "" if not loc or loc[-1] in _SECRET_NAMES or isinstance(value, dict) else f" (got {value!r})"
        parts.append(f"{name}: {msg}{shown}")
    return "invalid setting " + "; ".join(parts)


_SECRET_NAMES = {"password", "token", "client_secret"}


# --- generated documentation of the settings (.env.example, README table) -----------------------


def iter_settings() -> list[tuple[str, str, str]]:
    """(env name, default as it would be written in .env, description) for every setting."""
    rows: list[tuple[str, str, str]] = []
    for name, field in Settings.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for sub, subfield in ann.model_fields.items():
                env = f"{ENV_PREFIX}{name.upper()}{NESTED_DELIMITER}{sub.upper()}"
                rows.append(
                    (
                        env,
                        _render_default(subfield.get_default(call_default_factory=True)),
                        subfield.description or "",
                    )
                )
        else:
            rows.append(
                (
                    f"{ENV_PREFIX}{name.upper()}",
                    _render_default(field.get_default(call_default_factory=True)),
                    field.description or "",
                )
            )
    return rows


def _render_default(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def render_env_example() -> str:
    lines = [
        "# amili-customer-sync settings: every variable with its default (generated by",
        "# `amili-sync config --env-example`; a test fails when this file drifts from service/config.py).",
        "# Empty means unset. Secrets belong in a secret store, not in a committed .env.",
        "",
    ]
    for env, default, description in iter_settings():
        lines.append(f"# {description}")
        lines.append(f"{env}={default}")
    return "\n".join(lines) + "\n"


def render_markdown_table() -> str:
    lines = ["| variable | default | meaning |", "|---|---|---|"]
    for env, default, description in iter_settings():
        shown = ("`" + default.replace("|", "\\|") + "`") if default else ""
        lines.append(f"| `{env}` | {shown} | {description} |")
    return "\n".join(lines) + "\n"
