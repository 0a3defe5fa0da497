"""API keys: made by the CLI, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from premium_billing.errors import Unprocessable
from premium_billing.http.models import ApiKey

ROLES = ("admin", "billing", "finance", "auditor")


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    id: int
    name: str
    role: str
    raw: str


def create_key(session: Session, role: str, name: str) -> CreatedKey:
    if role not in ROLES:
        raise Unprocessable(f"role must be one of {', '.join(ROLES)}", field="role")
    if not name.strip():
        raise Unprocessable("name must not be empty", field="name")
    raw = "pb_" + secrets.token_urlsafe(32)
    key = ApiKey(name=name.strip(), role=role, key_hash=hash_key(raw), prefix=raw[:10])
    session.add(key)
    session.commit()
    return CreatedKey(id=key.id, name=key.name, role=key.role, raw=raw)


def find_key(session: Session, raw: str) -> ApiKey | None:
    key = session.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(raw)))
    if key is None or key.revoked_at is not None:
        return None
    return key
