"""Logs: JSON off a terminal, readable on one; secrets and personal numbers masked in real output."""

from __future__ import annotations

import io
import json
import logging

from service.logs import configure_logging, get_logger


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _emit(stream: io.StringIO, fmt: str) -> str:
    configure_logging(fmt, "INFO", stream=stream)
    log = get_logger("test")
    log.info(
        "calling api",
        token="eyJhbGciOiJIUzI1NiJ9.payload.sig",
        client_secret="very-secret",
        headers={"Authorization": "Bearer abc.def.ghi", "Accept": "application/json"},
        password="pw123",
        ssn="01019921717",
        customer={"name": "Owe", "ssn": "01019921717", "dateOfBirth": "1999-01-01"},
        note="customer 01019921717 moved; contact 010199 21717 too",
        customer_no="543210",
    )
    logging.getLogger("stdlib").warning("auth header was Bearer raw-token-value for 12345678901")
    return stream.getvalue()


def test_json_lines_when_not_on_a_terminal_with_everything_sensitive_masked() -> None:
    text = _emit(io.StringIO(), "auto")
    lines = [json.loads(line) for line in text.splitlines()]
    first = lines[0]
    assert first["event"] == "calling api" and first["level"] == "info"
    for secret in (
        "eyJhbGciOiJIUzI1NiJ9",
        "very-secret",
        "abc.def.ghi",
        "pw123",
        "01019921717",
        "1999-01-01",
        "raw-token-value",
        "12345678901",
        "010199 21717",
    ):
        assert secret not in text, secret
    assert first["customer_no"] == "543210"  # short numbers are not personal ids
    assert first["headers"]["Accept"] == "application/json"
    assert first["customer"]["name"] == "Owe"
    assert "***" in lines[1]["event"]


def test_console_format_on_a_terminal_is_readable_and_masked() -> None:
    text = _emit(_Tty(), "auto")
    assert "calling api" in text and not text.lstrip().startswith("{")
    for secret in ("very-secret", "01019921717", "pw123", "abc.def.ghi"):
        assert secret not in text


def test_json_forced_even_on_a_terminal() -> None:
    text = _emit(_Tty(), "json")
    assert json.loads(text.splitlines()[0])["event"] == "calling api"


def test_a_request_id_is_not_taken_for_a_national_id() -> None:
    from service.logs import mask_value

    # the last group of this UUID holds an 11-digit run: the id stays whole, the real number goes
    text = "request 81497b95-1407-4f42-b300-33140410159f for 01019921717"
    assert mask_value(text) == "request 81497b95-1407-4f42-b300-33140410159f for ***"
    assert mask_value("33140410159f") == "***f"  # not a UUID: masked as before
