"""The dashboard's named users: made by the CLI (`premium-billing users create`), passwords
stored as argon2 hashes, logins throttled by the failures recorded in the database. Each
public function that writes is one transaction."""

from __future__ import annotations

import functools
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.dashboard import rules
from premium_billing.dashboard.models import DashboardUser, LoginFailure
from premium_billing.db.errors import violated
from premium_billing.db.types import utcnow
from premium_billing.errors import Conflict, ServiceError, Unprocessable

MIN_PASSWORD = 12
MAX_PASSWORD = 1024  # argon2 takes any length: a bound keeps a login's cost bounded
MAX_NAME = 100
MAX_ADDRESS = 64


class LoginRefused(ServiceError):
    """Wrong name or password (which of the two is not said)."""

    status = 401


class LoginThrottled(ServiceError):
    """Too many failed logins for this name or from this address: locked for a while."""

    status = 429

    def __init__(self, message: str, minutes: int) -> None:
        super().__init__(message)
        self.minutes = minutes


@functools.cache
def hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, the library's (RFC 9106 low-memory) parameters


@functools.cache
def _decoy_hash() -> str:
    # An unknown name is verified against this, so that it costs what a known one does.
    return hasher().hash("no such user: a decoy password")


def user_throttle(settings: Settings) -> rules.Throttle:
    return rules.Throttle(
        settings.login_max_failures, timedelta(minutes=settings.login_lock_minutes)
    )


def address_throttle(settings: Settings) -> rules.Throttle:
    return rules.Throttle(
        settings.login_max_failures_per_address, timedelta(minutes=settings.login_lock_minutes)
    )


def check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise Unprocessable(f"name: 1 to {MAX_NAME} printable characters", field="name")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise Unprocessable(f"password: at least {MIN_PASSWORD} characters", field="password")
    if len(password) > MAX_PASSWORD:
        raise Unprocessable(f"password: at most {MAX_PASSWORD} characters", field="password")
    return password


def create_user(session: Session, role: str, name: str, password: str) -> DashboardUser:
    """A new dashboard user of `role` (the API's roles). A name already taken: Conflict."""
    if role not in rules.ROLES:
        raise Unprocessable(f"role must be one of {', '.join(rules.ROLES)}", field="role")
    user = DashboardUser(
        name=check_name(name), role=role, password_hash=hasher().hash(check_password(password))
    )
    session.add(user)
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        if violated(error, "uq_dashboard_users_name", "dashboard_users.name"):
            raise Conflict(f"a user named {user.name!r} exists already", field="name") from None
        raise
    return user


def active_user(session: Session, user_id: int) -> DashboardUser | None:
    """The user of a session cookie, unless deleted or disabled since."""
    user = session.get(DashboardUser, user_id)
    if user is None or user.disabled_at is not None:
        return None
    return user


def lock_ends(session: Session, settings: Settings, name: str, address: str,
              now: datetime) -> datetime | None:  # fmt: skip
    """When the later of the name's and the address's locks ends, or None (not locked)."""
    since = now - max(timedelta(minutes=settings.login_lock_minutes), timedelta(0))
    rows = session.execute(
        select(LoginFailure.name, LoginFailure.address, LoginFailure.failed_at).where(
            LoginFailure.failed_at > since,
            or_(LoginFailure.name == name, LoginFailure.address == address),
        )
    ).all()
    by_name = [r.failed_at for r in rows if r.name == name]
    by_address = [r.failed_at for r in rows if r.address == address]
    ends = [
        t
        for t in (
            rules.locked_until(by_name, now, user_throttle(settings)),
            rules.locked_until(by_address, now, address_throttle(settings)),
        )
        if t is not None
    ]
    return max(ends, default=None)


def log_in(
    session: Session, settings: Settings, name: str, password: str, address: str,
    now: datetime | None = None,
) -> DashboardUser:  # fmt: skip
    """The user whose name and password these are: one transaction. A locked name or
    address is refused before the password is checked (LoginThrottled, nothing recorded); a
    wrong name or password records a failure (LoginRefused); a good login clears the name's
    failures."""
    now = now or utcnow()
    name = name.strip()[:MAX_NAME]
    address = (address or "unknown")[:MAX_ADDRESS]
    ends = lock_ends(session, settings, name, address, now)
    if ends is not None:
        session.rollback()
        minutes = rules.minutes_left(ends, now)
        raise LoginThrottled(
            f"Too many failed logins: try again in {minutes} minute{'s' if minutes > 1 else ''}.",
            minutes,
        )
    user = session.scalar(select(DashboardUser).where(DashboardUser.name == name))
    usable = user is not None and user.disabled_at is None
    stored = user.password_hash if user is not None and usable else _decoy_hash()
    try:
        good = hasher().verify(stored, password[:MAX_PASSWORD]) and usable
    except (VerificationError, InvalidHashError):
        good = False
    if not good or user is None:
        forget_before = now - timedelta(minutes=settings.login_lock_minutes)
        session.execute(
            delete(LoginFailure).where(
                LoginFailure.failed_at <= forget_before,
                or_(LoginFailure.name == name, LoginFailure.address == address),
            )
        )
        session.add(LoginFailure(name=name, address=address, failed_at=now))
        session.commit()
        raise LoginRefused("Wrong name or password.")
    session.execute(delete(LoginFailure).where(LoginFailure.name == name))
    user.last_login_at = now
    if hasher().check_needs_rehash(user.password_hash):
        user.password_hash = hasher().hash(password)
    session.commit()
    return user


__all__ = [
    "LoginRefused",
    "LoginThrottled",
    "active_user",
    "create_user",
    "log_in",
]
