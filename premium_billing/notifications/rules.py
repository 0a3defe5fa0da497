"""Notification rules (pure): the kinds of notice, which collections step sends which, when
a failed attempt is retried, and how the pets at risk are named."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

KINDS = (
    "invoice_issued",
    "payment_receipt",
    "payment_failed",
    "reminder",
    "grace_notice",
    "final_notice",
    "lapse",
    "reinstatement",
    "refund_sent",
)
STATUSES = ("queued", "sent", "failed")

# The collections steps that send a notice (db.hooks.COLLECTION_STEPS_TAKEN); the others
# (autopay_retry, late_fee) send none of their own.
STEP_KINDS = {
    "reminder": "reminder",
    "grace_notice": "grace_notice",
    "final_notice": "final_notice",
    "lapse": "lapse",
    "reinstatement": "reinstatement",
}

MAX_BACKOFF_SECONDS = 3600.0


def retry_at(now: datetime, attempts: int, base_seconds: float) -> datetime:
    """When an email that failed its `attempts`-th attempt is tried again: base × 2^(n−1),
    at most an hour later."""
    exponent = max(attempts - 1, 0)
    delay = MAX_BACKOFF_SECONDS if exponent > 20 else base_seconds * 2**exponent
    return now + timedelta(seconds=min(delay, MAX_BACKOFF_SECONDS))


def gives_up(attempts: int, max_attempts: int) -> bool:
    """True when an email has had its last attempt."""
    return attempts >= max_attempts


def possessive(name: str) -> str:
    """'Rex' → "Rex's" (the apostrophe and s, whatever the name ends with)."""
    return f"{name}'s"


def join_words(words: Sequence[str]) -> str:
    """'a' · 'a and b' · 'a, b and c'."""
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} and {words[-1]}"


def cover_at_risk(pet_names: Sequence[str]) -> str:
    """Whose cover a notice is about: "Rex's and Mia's cover", or "your cover" (no pets)."""
    names = [n.strip() for n in pet_names if n and n.strip()]
    unique = list(dict.fromkeys(names))
    if not unique:
        return "your cover"
    return f"{join_words([possessive(n) for n in unique])} cover"


def message_id(notification_id: int, domain: str) -> str:
    """The Message-ID of a notice: the same on every attempt, so a receiver can tell a
    resend (after a crash between the server's acceptance and the mark) from a new mail."""
    return f"<notification-{notification_id}@{domain}>"
