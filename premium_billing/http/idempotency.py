"""Idempotency-Key on POST: the first response is stored and replayed for the same key.

The unique (api key, idempotency key) constraint decides which of two racing requests runs.
The key is claimed in a short transaction of its own; when the request's work commits, the
same transaction marks the key `committed_at` (a `before_commit` listener on the request's
session), so whatever happens afterwards — a 5xx while the response is built, a process
killed before the response is stored — a retry never runs the work again: it gets the stored
response (5xx included, as Stripe does), or a 409 saying the work was done but its response
was lost. A key whose request committed nothing and stored nothing for
IDEMPOTENCY_ABANDONED_SECONDS was abandoned (its process died): a retry runs anew.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, g, request
from sqlalchemy import Connection, delete, event, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.db.types import utcnow
from premium_billing.http.limits import FORM_TYPES
from premium_billing.http.models import IdempotencyRecord
from premium_billing.http.problems import problem
from premium_billing.http.session import database, db_session


def _request_hash() -> str:
    digest = hashlib.sha256()
    digest.update(request.method.encode() + b" " + request.path.encode() + b"\n")
    if request.mimetype in FORM_TYPES:
        _hash_form(digest)
    else:
        digest.update(request.get_data(cache=True))
    return digest.hexdigest()


def _hash_form(digest: Any) -> None:
    """A form's fields and files (a bank statement upload: spooled to disk by the parser),
    the files read in chunks: the body is never held in memory whole."""
    for name, value in request.form.items(multi=True):
        digest.update(json.dumps(["field", name, value]).encode() + b"\n")
    for name, upload in request.files.items(multi=True):
        digest.update(json.dumps(["file", name, upload.filename]).encode() + b"\n")
        stream = upload.stream
        start = stream.tell()
        size = 0
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
        stream.seek(start)
        digest.update(f"\n{size}\n".encode())


def _claim(conn: Connection, key: str, request_hash: str) -> int:
    return int(
        conn.execute(
            insert(IdempotencyRecord)
            .values(
                api_key_id=g.api_key_id,
                key=key,
                method=request.method,
                path=request.path,
                request_hash=request_hash,
                created_at=utcnow(),
            )
            .returning(IdempotencyRecord.id)
        ).scalar_one()
    )


def _replay(row: Any) -> Response:
    response = Response(
        row.response_body or "", status=row.response_status, content_type=row.response_content_type
    )
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _abandoned(row: Any) -> bool:
    seconds = current_app.config["SETTINGS"].idempotency_abandoned_seconds
    return row.committed_at is None and row.created_at < utcnow() - timedelta(seconds=seconds)


def before() -> Response | None:
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or key is None or "api_key_id" not in g:
        return None
    if not key.strip() or len(key) > 255 or not key.isprintable():
        return problem(
            400,
            "Idempotency-Key must be 1 to 255 printable characters.",
            {"Idempotency-Key": ["invalid"]},
        )
    request_hash = _request_hash()
    engine = database().engine
    try:
        with engine.begin() as conn:
            record_id = _claim(conn, key, request_hash)
    except IntegrityError:
        with engine.begin() as conn:
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
            if row.response_status is not None:
                return _replay(row)
            if row.committed_at is not None:
                return problem(
                    409,
                    "The first request with this Idempotency-Key was done (committed at "
                    f"{row.committed_at.isoformat()}) but its response was lost: read the "
                    "resource instead of retrying.",
                )
            if not _abandoned(row):
                return problem(409, "A request with this Idempotency-Key is still in progress.")
            # Its process died before committing anything: run this request instead.
            conn.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == row.id))
            record_id = _claim(conn, key, request_hash)
    g.idempotency_record_id = record_id
    _mark_when_committed(db_session(), record_id)
    return None


def _mark_when_committed(session: Session, record_id: int) -> None:
    """In the request's own transaction, at its commit: the key's work is done."""

    def mark(session: Session) -> None:
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.id == record_id, IdempotencyRecord.committed_at.is_(None))
            .values(committed_at=utcnow())
        )

    event.listen(session, "before_commit", mark)
    g.idempotency_listener = (session, mark)


def after(response: Response) -> Response:
    record_id = g.pop("idempotency_record_id", None)
    listener = g.pop("idempotency_listener", None)
    if listener is not None:
        event.remove(listener[0], "before_commit", listener[1])
    if record_id is None:
        return response
    with database().engine.begin() as conn:
        committed = conn.execute(
            select(IdempotencyRecord.committed_at).where(IdempotencyRecord.id == record_id)
        ).scalar_one_or_none()
        if response.status_code >= 500 and committed is None:
            # Nothing was committed: let the client retry with the same key.
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
