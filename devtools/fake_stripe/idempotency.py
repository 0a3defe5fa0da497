"""Stripe's idempotency rules, per API key and `Idempotency-Key`:

* same key and same parameters: the first response is replayed (the API adds the header
  `Idempotent-Replayed: true`);
* same key, other parameters (or another path): 400 `idempotency_error`;
* a request that fails validation (400/404) saves nothing, so the key can be used again
  (`release`); a request that ran (2xx, or a 402 card decline) is saved (`save`);
* the same key while the first request is still running: 409."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from .params import ApiError

Fingerprint = tuple[Any, ...]


@dataclass
class SavedAnswer:
    """The answer saved for a key (`in_flight` while its request runs)."""

    fingerprint: Fingerprint
    status: int = 0
    body: bytes = b""
    request_id: str = ""
    in_flight: bool = True


class IdempotencyKeys:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._saved: dict[tuple[str, str], SavedAnswer] = {}

    def claim(self, api_key: str, key: str, fingerprint: Fingerprint) -> SavedAnswer | None:
        """None: `key` is new, and reserved for this request until `save` or `release`.
        Otherwise the answer to replay; ApiError if the key cannot be used for this request."""
        with self._lock:
            previous = self._saved.get((api_key, key))
            if previous is None:
                self._saved[(api_key, key)] = SavedAnswer(fingerprint=fingerprint)
                return None
        if previous.fingerprint != fingerprint:
            raise ApiError(
                400,
                "Keys for idempotent requests can only be used with the same "
                "parameters they were first used with. Try using a key other "
                f"than '{key}' if you meant to execute a different request.",
                type="idempotency_error",
            )
        if previous.in_flight:
            raise ApiError(
                409,
                "There is currently another in-progress request using this "
                f"Stripe-Idempotency-Key ({key}). Please try again later.",
                type="idempotency_error",
                code="idempotency_key_in_use",
            )
        return previous

    def save(self, api_key: str, key: str, status: int, body: bytes, request_id: str) -> None:
        """The claimed request ran: replay its answer from now on."""
        with self._lock:
            saved = self._saved[(api_key, key)]
            saved.status, saved.body, saved.request_id = status, body, request_id
            saved.in_flight = False

    def release(self, api_key: str, key: str) -> None:
        """The claimed request did not run (validation failed): the key is free again."""
        with self._lock:
            self._saved.pop((api_key, key), None)
