"""Who is acting: an API key, a job, a webhook event, the CLI. Read by the audit trail."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    kind: str  # "api_key" | "job" | "webhook" | "cli" | "system"
    id: str | None = None  # key id, job run id, Stripe event id
    name: str | None = None  # key name, job name, event type
    request_id: str | None = None


SYSTEM = Actor(kind="system", name="system")
_current: ContextVar[Actor] = ContextVar("premium_billing_actor", default=SYSTEM)


def current_actor() -> Actor:
    return _current.get()


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def set_actor(actor: Actor) -> object:
    """Set for the rest of this context; returns a token for `reset_actor`."""
    return _current.set(actor)


def reset_actor(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]
