"""Errors: the billing rules' typed errors (DomainError) and the use cases' errors
(ServiceError), which the API maps each to one HTTP status. Pure: no framework imports."""

from __future__ import annotations


class DomainError(Exception):
    """A billing rule was broken. `field` names the input at fault, when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field


class UnknownCurrency(DomainError):
    """The code is not an active ISO 4217 currency."""


class InvalidAmount(DomainError):
    """An amount that cannot be money: a float, too many decimals, not a number."""


class ScheduleError(DomainError):
    """A schedule cannot be built from these dates, term and plan."""


class OutsideTerm(DomainError):
    """A date falls outside the policy term it should be in."""


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
