"""Issue 12, edges, on the Stripe webhook (10, 11): its 1 MB cap holds for chunked bodies,
signed or not, refused as they are read; a signed event nesting 10,000 deep is a 400 before
it is parsed. Nothing is stored in either case."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from premium_billing.config import Settings
from premium_billing.stripe_billing.gateway import sign_webhook
from premium_billing.stripe_billing.models import StripeEvent
from tests.integration.test_edges_bodies import chunked, raw_post

SECRET = "whsec_edges_test_secret"
MB = 1024 * 1024


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, stripe_webhook_secret=SECRET, allow_time_travel=True)


@pytest.fixture
def url(live_server: Any) -> str:
    return live_server.base_url + "/webhooks/stripe"


def stored(db: Any) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(StripeEvent)))


def event(size: int = 0, **data: Any) -> bytes:
    """A Stripe event of a type we ignore, padded with a long description to `size` bytes."""
    body = {
        "id": f"evt_edges_{time.monotonic_ns()}",
        "object": "event",
        "type": "customer.created",
        "created": int(time.time()),
        "data": {"object": {"id": "cus_1", "object": "customer", **data}},
    }
    encoded = json.dumps(body).encode()
    if size > len(encoded):
        body["data"]["object"]["description"] = "x" * (size - len(encoded) - 20)
        encoded = json.dumps(body).encode()
    return encoded


def signed(payload: bytes) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "Stripe-Signature": sign_webhook(payload, SECRET, int(time.time())),
    }


def in_pieces(payload: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for start in range(0, len(payload), size):
        yield payload[start : start + size]


def assert_problem(response: Any, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    assert response.headers["Content-Type"] == "application/problem+json"


def test_a_small_signed_event_is_stored(db, url):
    """The control: what the refusals below would otherwise have stored."""
    payload = event()
    response = requests.post(url, data=payload, headers=signed(payload), timeout=30)
    assert response.status_code == 200, response.text
    assert stored(db) == 1


def test_an_unsigned_chunked_50_mb_body_is_413_and_not_read_whole(db, url):
    def body() -> Iterator[bytes]:
        for _ in range(800):  # 50 MB, 64 KB at a time
            yield b" " * (64 * 1024)

    response = requests.post(url, data=body(), headers={"Content-Type": "application/json"})
    assert_problem(response, 413)
    assert stored(db) == 0


def test_signed_5_mb_events_are_413_chunked_or_declared_and_none_is_stored(db, url):
    for _ in range(3):
        payload = event(5 * MB)
        assert_problem(requests.post(url, data=in_pieces(payload), headers=signed(payload)), 413)
        assert_problem(requests.post(url, data=payload, headers=signed(payload)), 413)
    assert stored(db) == 0


def test_a_signed_event_just_over_1_mb_is_refused_as_it_is_read(db, live_server):
    payload = event(MB + 100 * 1024)
    pieces = list(in_pieces(payload))[:-1]  # the body never ends: the answer cannot wait for it
    response = raw_post(
        live_server.base_url,
        "/webhooks/stripe",
        {**signed(payload), "Transfer-Encoding": "chunked"},
        chunked(*pieces),
    )
    assert response.status_code == 413, response.text
    assert stored(db) == 0


def test_a_signed_event_nested_10000_deep_is_400_before_parsing(db, url):
    nested = b'{"a": ' * 10_000 + b"1" + b"}" * 10_000
    payload = event(metadata="PLACEHOLDER").replace(b'"PLACEHOLDER"', nested)
    for content_type in ("application/json", "text/plain"):
        headers = signed(payload) | {"Content-Type": content_type}
        response = requests.post(url, data=payload, headers=headers, timeout=30)
        assert_problem(response, 400)
        assert "nests" in response.json()["detail"]
    deep_array = b"[" * 10_000 + b"]" * 10_000  # unsigned too
    assert_problem(requests.post(url, data=deep_array, timeout=30), 400)
    assert stored(db) == 0
