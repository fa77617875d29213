"""Errors of the Amili ARM API client.

Every message names the client number, the method and path, and the status or cause. No message
ever contains the bearer token or the client secret: the client redacts both (and anything that
looks like a bearer token or a national id) from the short body excerpts it quotes.
"""

from __future__ import annotations

from http import HTTPStatus


class AmiliError(Exception):
    """Base of every error raised by `service.amili`."""


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


class AmiliHTTPError(AmiliError):
    """The API answered a status that is not retried (400, 403, 404, other 4xx)."""

    def __init__(
        self, client_no: int, path: str, status: int, body_excerpt: str = "", method: str = "GET"
    ) -> None:
        self.client_no = client_no
        self.path = path
        self.status = status
        self.method = method
        self.body_excerpt = body_excerpt
        super().__init__(self._message())

    def _message(self) -> str:
        reason = _reason(self.status)
        text = f"Amili API: client {self.client_no}: {self.method} {self.path} answered {self.status}"
        if reason:
            text += f" {reason}"
        if self.body_excerpt:
            text += f": {self.body_excerpt}"
        return text

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.client_no, self.path, self.status, self.body_excerpt, self.method))


class AmiliBadRequest(AmiliHTTPError):
    """400: the API rejected the request (bad filter, bad page number...)."""


class AmiliForbidden(AmiliHTTPError):
    """403: the credentials may not read this client."""


class AmiliNotFound(AmiliHTTPError):
    """404: unknown client (or, on a `query=` request, an expired query: see `AmiliQueryExpired`)."""


class AmiliGatewayNotFound(AmiliHTTPError):
    """404 without the API's own error body (a gateway's or proxy's): it proves nothing about the
    resource, so it is neither "absent" nor the client's fault (not an `AmiliNotFound`)."""

    def _message(self) -> str:
        return super()._message() + " (not the API's error body: a gateway or proxy answered)"


class AmiliQueryExpired(AmiliNotFound):
    """A `queryId` expired again after the query had already been restarted once."""

    def _message(self) -> str:
        return super()._message() + " (the query id expired again after one restart of the query; giving up)"


class AmiliAuthError(AmiliError):
    """The token endpoint failed (or refused the credentials), or the API answered 401 after one refresh."""


class AmiliUnavailable(AmiliError):
    """Retries exhausted on 429, 5xx, timeouts or connection errors."""

    # Fields set one by one like AmiliHTTPError's (kept): each error carries its own named attributes.
    def __init__(
        self, client_no: int | None, path: str, cause: str, attempts: int, method: str = "GET"
    ) -> None:
        self.client_no = client_no
        self.path = path
        self.cause = cause
        self.attempts = attempts
        self.method = method
        who = f"client {client_no}" if client_no is not None else "token endpoint"
        super().__init__(
            f"Amili API: {who}: {method} {path} still failing after {attempts} attempt(s); last cause: {cause}"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.client_no, self.path, self.cause, self.attempts, self.method))


class AmiliProtocolError(AmiliError):
    """The API broke its own contract: malformed JSON (persistent), a repeated page, a customerNo seen
    twice in one read, page counts that disagree with `totalCount`, or a response of the wrong shape."""


class AmiliBadData(AmiliProtocolError):
    """A page (or GET-one answer) the run cannot use: JSON of the wrong shape or outside the bounds
    of `service.amili.models`. `where` names the client and the page, `field` the offending field
    (`customers[17].balanceTotal`, `summary`); nothing of such a page is published."""

    def __init__(self, where: str, field: str, problem: str) -> None:
        self.where = where
        self.field = field
        self.problem = problem
        super().__init__(f"Amili API: {where}: field {field}: {problem}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.where, self.field, self.problem))
