"""Typed errors of the Fax2WSPull client. Messages never contain the password."""

from __future__ import annotations

from faxflow.errors import FaxflowError


class RetarusError(FaxflowError):
    """Something went wrong talking to Retarus.

    `status` is the HTTP status when there was one; `transient` says whether trying again
    later may help (the worker leaves the fax locked) or not (a configuration problem).
    """

    transient = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AuthError(RetarusError):
    """401: wrong username (customer number) or password."""


class ForbiddenError(RetarusError):
    """403: the topic is unknown or not owned by these credentials."""


class NotFoundError(RetarusError):
    """404: the file is gone (documents are deleted 7 days after receipt) or never existed."""


class BadRequestError(RetarusError):
    """400: the server refused our parameters."""


class ProtocolError(RetarusError):
    """The answer is not what the contract describes (not JSON, wrong shape, bad URL)."""

    transient = True


class UnavailableError(RetarusError):
    """Retries ran out on network errors or 429/5xx answers."""

    transient = True


class TooLargeError(RetarusError):
    """A download exceeded the size cap; nothing was kept on disk."""
