"""Make a policyholder's portal link (`portal_links`: the signed, expiring token)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.policies.policyholders import get_policyholder
from premium_billing.portal_links import portal_url


def portal_link(session: Session, settings: Settings, holder_id: int) -> tuple[str, datetime]:
    """The portal link of an existing policyholder (NotFound otherwise) and its expiry."""
    get_policyholder(session, holder_id)
    return portal_url(settings, holder_id)
