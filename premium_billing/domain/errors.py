"""Typed errors of the billing rules. Pure: no framework imports."""

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
