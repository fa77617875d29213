"""Amili ARM API adapter: an async client that reads a client's customers completely.

See `client.py` (the client), `reader.py` (paging, slicing, guards, coverage), `slicing.py` (the
slicing strategies and their assumptions), `_http.py` (retries, Retry-After, rate limit),
`auth.py` (tokens), `models.py` and `parsing.py` (answers decoded into bounded structs) and
`_tolerant.py` (the tolerant reading of what the strict decoder refuses).
"""

from .client import AmiliClient, CustomerRead
from .errors import (
    AmiliAuthError,
    AmiliBadData,
    AmiliBadRequest,
    AmiliError,
    AmiliForbidden,
    AmiliGatewayNotFound,
    AmiliHTTPError,
    AmiliNotFound,
    AmiliProtocolError,
    AmiliQueryExpired,
    AmiliUnavailable,
)
from .models import Customer, Distribution, NamePrefixes, Page, PostalAddress, ReadReport
from .slicing import FilterSetSlicing, NamePrefixSlicing, SliceStrategy, make_strategy

__all__ = [
    "AmiliAuthError",
    "AmiliBadData",
    "AmiliBadRequest",
    "AmiliClient",
    "AmiliError",
    "AmiliForbidden",
    "AmiliGatewayNotFound",
    "AmiliHTTPError",
    "AmiliNotFound",
    "AmiliProtocolError",
    "AmiliQueryExpired",
    "AmiliUnavailable",
    "Customer",
    "CustomerRead",
    "Distribution",
    "FilterSetSlicing",
    "NamePrefixSlicing",
    "NamePrefixes",
    "Page",
    "PostalAddress",
    "ReadReport",
    "SliceStrategy",
    "make_strategy",
]
