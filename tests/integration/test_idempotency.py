"""Idempotency-Key: the work of a request runs once, whatever fails after it committed."""

from __future__ import annotations

from datetime import timedelta

from flask import Response, request
from sqlalchemy import func, select, update

from premium_billing.db.types import utcnow
from premium_billing.http.models import IdempotencyRecord
from premium_billing.payments.models import Payment

BODY = {"amount": 700, "currency": "USD", "method": "cash", "received_on": "2026-02-01"}


def _payments(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Payment))


def test_a_failure_after_the_commit_is_replayed_not_posted_again(app, api, db):
    failures = {"left": 1}

    @app.after_request
    def fail_once_after_the_work(response: Response) -> Response:
        # What a worker killed by a timeout, or a broken serializer, does after the commit.
        if request.method == "POST" and failures["left"]:
            failures["left"] -= 1
            return Response("upstream failure", status=502)
        return response

    headers = {"Idempotency-Key": "pay-after-a-failure"}
    first = api.post("/payments", json=BODY, headers=headers)
    assert first.status_code == 502
    second = api.post("/payments", json=BODY, headers=headers)
    assert second.status_code == 502  # the first outcome, stored with the work
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert _payments(db) == 1


def test_a_failure_before_anything_committed_lets_the_client_retry(app, api, db):
    headers = {"Idempotency-Key": "bad-then-good"}
    refused = api.post("/payments", json={**BODY, "currency": "XXX1"}, headers=headers)
    assert refused.status_code == 422  # a 4xx is an outcome: replayed as it is
    again = api.post("/payments", json={**BODY, "currency": "XXX1"}, headers=headers)
    assert again.status_code == 422 and again.headers.get("Idempotent-Replayed") == "true"
    with db.session() as s:
        assert s.scalar(select(IdempotencyRecord.committed_at)) is None
    assert _payments(db) == 0


def test_a_response_lost_after_the_commit_is_a_409_not_a_second_payment(api, db):
    headers = {"Idempotency-Key": "lost-response"}
    assert api.post("/payments", json=BODY, headers=headers).status_code == 201
    with db.session() as s:
        # As if the process died between the commit and storing its response.
        s.execute(update(IdempotencyRecord).values(response_status=None, response_body=None))
        s.commit()
    retry = api.post("/payments", json=BODY, headers=headers)
    assert retry.status_code == 409
    assert "response was lost" in retry.json()["detail"]
    assert _payments(db) == 1


def test_an_abandoned_key_expires_and_a_recent_one_is_in_progress(api, db, settings):
    headers = {"Idempotency-Key": "died-before-commit"}
    assert api.post("/payments", json=BODY, headers=headers).status_code == 201
    with db.session() as s:
        # As if the first request had claimed the key and died before committing anything.
        s.execute(
            update(IdempotencyRecord).values(
                committed_at=None, response_status=None, response_body=None
            )
        )
        s.commit()
    in_progress = api.post("/payments", json=BODY, headers=headers)
    assert in_progress.status_code == 409 and "in progress" in in_progress.json()["detail"]
    with db.session() as s:
        old = utcnow() - timedelta(seconds=settings.idempotency_abandoned_seconds + 1)
        s.execute(update(IdempotencyRecord).values(created_at=old))
        s.commit()
    retry = api.post("/payments", json=BODY, headers=headers)
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") is None
    replay = api.post("/payments", json=BODY, headers=headers)
    assert replay.json()["id"] == retry.json()["id"]
