"""API keys: made, listed, revoked and rotated by the CLI, stored only as SHA-256 hashes.
Each public function that changes keys is one transaction."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.db.errors import violated
from premium_billing.db.types import utcnow
from premium_billing.errors import Conflict, NotFound, Unprocessable
from premium_billing.http.models import ApiKey

ROLES = ("admin", "billing", "finance", "auditor")
KEY_PREFIX = "key_"
# A rotated key may keep working a while, so that its users can switch: at most this long.
MAX_ROTATION_GRACE = timedelta(days=30)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    id: int
    name: str
    role: str
    raw: str


def _new_key(role: str, name: str, rotated_from_id: int | None = None) -> tuple[ApiKey, str]:
    raw = "pb_" + secrets.token_urlsafe(32)
    key = ApiKey(
        name=name,
        role=role,
        key_hash=hash_key(raw),
        prefix=raw[:10],
        rotated_from_id=rotated_from_id,
    )
    return key, raw


def create_key(session: Session, role: str, name: str) -> CreatedKey:
    if role not in ROLES:
        raise Unprocessable(f"role must be one of {', '.join(ROLES)}", field="role")
    if not name.strip():
        raise Unprocessable("name must not be empty", field="name")
    key, raw = _new_key(role, name.strip())
    session.add(key)
    session.commit()
    return CreatedKey(id=key.id, name=key.name, role=key.role, raw=raw)


def is_active(key: ApiKey, now: datetime) -> bool:
    """A key works until its `revoked_at` (none: for good)."""
    return key.revoked_at is None or key.revoked_at > now


def find_key(session: Session, raw: str) -> ApiKey | None:
    """The working key whose hash this is, or None (unknown, revoked, past its grace)."""
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw)))
    if key is None or not is_active(key, utcnow()):
        return None
    return key


def key_id(text: str) -> int:
    """`key_3` (as the CLI and the audit trail name a key) or `3` as the key's id."""
    number = text.strip().removeprefix(KEY_PREFIX)
    if not number.isdigit() or len(number) > 18:
        raise NotFound(f"no API key {text!r} (ids look like key_3: see `keys list`)")
    return int(number)


@dataclass(frozen=True)
class KeyListing:
    """A key as `keys list` shows it: never the key, nor its hash."""

    id: str
    name: str
    role: str
    prefix: str
    status: str  # active, expiring (a rotated key in its grace) or revoked
    created_at: datetime
    revoked_at: datetime | None
    rotated_from: str | None
    rotated_to: str | None


def list_keys(session: Session, *, include_revoked: bool = True) -> list[KeyListing]:
    """Every key in id order, with its status at this instant."""
    now = utcnow()
    keys = list(session.scalars(select(ApiKey).order_by(ApiKey.id)))
    successor = {k.rotated_from_id: k.id for k in keys if k.rotated_from_id is not None}
    listing = []
    for key in keys:
        if key.revoked_at is None:
            status = "active"
        elif key.revoked_at > now:
            status = "expiring"
        else:
            status = "revoked"
        if status == "revoked" and not include_revoked:
            continue
        listing.append(
            KeyListing(
                id=f"{KEY_PREFIX}{key.id}",
                name=key.name,
                role=key.role,
                prefix=key.prefix,
                status=status,
                created_at=key.created_at,
                revoked_at=key.revoked_at,
                rotated_from=(
                    f"{KEY_PREFIX}{key.rotated_from_id}" if key.rotated_from_id else None
                ),
                rotated_to=f"{KEY_PREFIX}{successor[key.id]}" if key.id in successor else None,
            )
        )
    return listing


def _locked(session: Session, number: int) -> ApiKey:
    key = session.scalar(select(ApiKey).where(ApiKey.id == number).with_for_update())
    if key is None:
        raise NotFound(f"no API key {KEY_PREFIX}{number} (see `keys list`)")
    return key


def revoke_key(session: Session, text: str) -> ApiKey:
    """Revoke a key now: requests with it are a 401 from this instant (a rotated key in its
    grace too). A key already revoked is a Conflict."""
    number = key_id(text)
    now = utcnow()
    key = _locked(session, number)
    if key.revoked_at is not None and key.revoked_at <= now:
        session.rollback()
        when = key.revoked_at.isoformat(timespec="seconds")
        raise Conflict(f"{KEY_PREFIX}{number} was already revoked at {when}")
    key.revoked_at = now
    session.commit()
    return key


@dataclass(frozen=True)
class RotatedKey:
    old_id: int
    old_revoked_at: datetime
    new: CreatedKey


def rotate_key(session: Session, text: str, grace: timedelta = timedelta(0)) -> RotatedKey:
    """A new key with the old one's name and role, in one transaction; the old one stops
    working after `grace` (0: at once). A key is rotated once (a unique constraint: a second
    rotation, even at the same time, is a Conflict), and a revoked key is not rotated."""
    if grace < timedelta(0) or grace > MAX_ROTATION_GRACE:
        raise Unprocessable(
            f"the grace must be between 0 and {MAX_ROTATION_GRACE.days} days", field="grace"
        )
    number = key_id(text)
    now = utcnow()
    old = _locked(session, number)
    successor = session.scalar(select(ApiKey.id).where(ApiKey.rotated_from_id == number))
    if successor is not None:
        session.rollback()
        raise Conflict(f"{KEY_PREFIX}{number} was already rotated: its successor is "
                       f"{KEY_PREFIX}{successor}")  # fmt: skip
    if old.revoked_at is not None and old.revoked_at <= now:
        session.rollback()
        raise Conflict(f"{KEY_PREFIX}{number} is revoked: create a new key instead")
    new, raw = _new_key(old.role, old.name, rotated_from_id=old.id)
    session.add(new)
    ends = now + grace
    old.revoked_at = ends if old.revoked_at is None else min(old.revoked_at, ends)
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        if violated(error, "uq_api_keys_rotated_from_id", "api_keys.rotated_from_id"):
            raise Conflict(f"{KEY_PREFIX}{number} was already rotated") from None
        raise
    return RotatedKey(
        old_id=old.id,
        old_revoked_at=old.revoked_at,
        new=CreatedKey(id=new.id, name=new.name, role=new.role, raw=raw),
    )
