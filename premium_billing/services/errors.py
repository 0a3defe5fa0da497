"""Errors the use cases raise; the API maps each to one HTTP status."""

from __future__ import annotations


class ServiceError(Exception):
    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    """The request is valid but clashes with the current state (duplicate, already done)."""

    status = 409


class Unprocessable(ServiceError):
    """The request is well-formed but breaks a rule (unknown reference, out of window)."""

    status = 422
