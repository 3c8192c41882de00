"""Client for Retarus' Fax2WSPull REST API (see docs/client.md)."""

from faxflow.retarus.client import REGIONS, RetarusClient, region_url
from faxflow.retarus.errors import (
    AuthError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ProtocolError,
    RetarusError,
    TooLargeError,
    UnavailableError,
)
from faxflow.retarus.retry import RetryPolicy

__all__ = [
    "REGIONS",
    "AuthError",
    "BadRequestError",
    "ForbiddenError",
    "NotFoundError",
    "ProtocolError",
    "RetarusClient",
    "RetarusError",
    "RetryPolicy",
    "TooLargeError",
    "UnavailableError",
    "region_url",
]
