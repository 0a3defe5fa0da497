"""The policyholder portal's links: a signed token naming one policyholder, expiring.

Every email carries one (the Pay now link) and the back office makes one with
`POST /policyholders/{id}/portal-link`; `GET /portal/{token}` reads it back. The token is
itsdangerous' URL-safe timed signature over SECRET_KEY with a salt of its own (a token is
good for the portal only); an altered, expired or unreadable token reads as None, so the
portal answers 404 and says nothing of why.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from itsdangerous import BadData, URLSafeTimedSerializer

from premium_billing.config import Settings

SALT = "premium-billing.portal"


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=SALT)


def make_token(settings: Settings, policyholder_id: int) -> str:
    return _serializer(settings).dumps({"ph": int(policyholder_id)})


def read_token(settings: Settings, token: str) -> int | None:
    """The policyholder the token names, or None (altered, expired, not ours)."""
    try:
        data = _serializer(settings).loads(token, max_age=settings.portal_token_days * 24 * 3600)
    except (BadData, UnicodeError, ValueError, TypeError):
        return None
    holder = data.get("ph") if isinstance(data, dict) else None
    return holder if isinstance(holder, int) and not isinstance(holder, bool) else None


def portal_url(settings: Settings, policyholder_id: int) -> tuple[str, datetime]:
    """The portal link of a policyholder and when it expires (UTC)."""
    token = make_token(settings, policyholder_id)
    expires = datetime.now(UTC) + timedelta(days=settings.portal_token_days)
    return f"{settings.public_base_url.rstrip('/')}/portal/{token}", expires
