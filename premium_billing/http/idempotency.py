"""Idempotency-Key on POST: the first response is stored and replayed for the same key.

The unique (api key, idempotency key) constraint decides which of two racing requests runs.
"""

from __future__ import annotations

import hashlib

from flask import Flask, Response, g, request
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from premium_billing.http.models import IdempotencyRecord
from premium_billing.http.problems import problem
from premium_billing.http.session import database


def _request_hash() -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.path.encode() + b"\n")
    digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def before() -> Response | None:
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or key is None or "api_key_id" not in g:
        return None
    if not key.strip() or len(key) > 255:
        return problem(
            400, "Idempotency-Key must be 1 to 255 characters.", {"Idempotency-Key": ["invalid"]}
        )
    request_hash = _request_hash()
    engine = database().engine
    try:
        with engine.begin() as conn:
            record_id = conn.execute(
                insert(IdempotencyRecord)
                .values(
                    api_key_id=g.api_key_id,
                    key=key,
                    method=request.method,
                    path=request.path,
                    request_hash=request_hash,
                )
                .returning(IdempotencyRecord.id)
            ).scalar_one()
    except IntegrityError:
        with engine.connect() as conn:
            row = conn.execute(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.api_key_id == g.api_key_id, IdempotencyRecord.key == key
                )
            ).one()
        if row.request_hash != request_hash:
            return problem(
                409,
                "This Idempotency-Key was used with a different request body or path.",
                {"Idempotency-Key": ["reused with a different request"]},
            )
        if row.response_status is None:
            return problem(409, "A request with this Idempotency-Key is still in progress.")
        response = Response(
            row.response_body or "",
            status=row.response_status,
            content_type=row.response_content_type,
        )
        response.headers["Idempotent-Replayed"] = "true"
        return response
    g.idempotency_record_id = record_id
    return None


def after(response: Response) -> Response:
    record_id = g.pop("idempotency_record_id", None)
    if record_id is None:
        return response
    with database().engine.begin() as conn:
        if response.status_code >= 500:
            # Nothing was done; let the client retry with the same key.
            conn.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
        else:
            conn.execute(
                update(IdempotencyRecord)
                .where(IdempotencyRecord.id == record_id)
                .values(
                    response_status=response.status_code,
                    response_body=response.get_data(as_text=True),
                    response_content_type=response.content_type,
                )
            )
    return response


def register_idempotency(app: Flask) -> None:
    app.before_request(before)
    app.after_request(after)
