"""Issue 12, edges: request bodies (10, 11). A body over its limit is a 413 (problem+json)
refused while it is read — a declared length before any of it, a chunked one at the limit —
and a JSON body nesting too deep is a 400 before any parser recurses; nothing is stored."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from premium_billing.config import Settings
from premium_billing.http.models import IdempotencyRecord
from premium_billing.payments.models import Payment
from premium_billing.policies.models import Policyholder
from premium_billing.reconciliation.models import BankLine, BankStatement
from tests.integration.recon_helpers import csv_file

MB = 1024 * 1024
LIMIT = 2 * MB  # MAX_CONTENT_LENGTH's default
UPLOAD_LIMIT = 3 * MB  # BANK_STATEMENT_MAX_LENGTH, lowered from 100 MB for the test
MODELS = (Policyholder, Payment, BankStatement, BankLine, IdempotencyRecord)


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        bank_statement_max_length=UPLOAD_LIMIT,
        allow_time_travel=True,
    )


def counts(db: Any) -> tuple[int, ...]:
    with db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in MODELS)


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["detail"]
    return body


def chunks(total: int, first: bytes = b"", size: int = 64 * 1024) -> Iterator[bytes]:
    """`total` bytes (starting with `first`) in pieces: requests sends them chunked."""
    yield first
    left = total - len(first)
    while left > 0:
        piece = min(size, left)
        yield b" " * piece
        left -= piece


def padded_json(document: dict[str, Any], size: int) -> bytes:
    """The JSON document followed by spaces: exactly `size` bytes, still valid JSON."""
    body = json.dumps(document).encode()
    return body + b" " * (size - len(body))


class RawResponse:
    def __init__(self, data: bytes) -> None:
        head, _, self.body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.status_code = int(lines[0].split()[1])
        self.headers = {k.strip(): v.strip() for k, _, v in (li.partition(":") for li in lines[1:])}

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def raw_post(base_url: str, path: str, headers: dict[str, str], parts: list[bytes]) -> RawResponse:
    """POST over a plain socket, sending only `parts` of the body (never its end), then read
    the answer: a server that waited for the whole body would never answer."""
    address = urlsplit(base_url)
    with socket.create_connection((address.hostname, address.port), timeout=10) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: {address.netloc}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        sock.sendall(head.encode())
        for part in parts:
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        received = b""
        while not _complete(received):  # not until EOF: the server may still be draining
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            received += data
    return RawResponse(received)


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    length = RawResponse(head + sep).headers.get("Content-Length")
    return length is not None and len(body) >= int(length)


def chunked(*pieces: bytes) -> list[bytes]:
    """HTTP/1.1 chunks, without the final zero-length chunk (the body never ends)."""
    return [f"{len(p):x}\r\n".encode() + p + b"\r\n" for p in pieces]


# --- 11. size ------------------------------------------------------------------------------


def test_a_declared_60_mb_body_is_413_before_any_of_it_is_sent(api, db, live_server):
    before = counts(db)
    response = raw_post(
        live_server.base_url,
        "/api/v1/policyholders",
        {
            "Authorization": f"Bearer {api.key}",
            "Content-Type": "application/json",
            "Content-Length": str(60 * 1000 * 1000),
        },
        [b'{"name": "'],
    )
    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert str(LIMIT) in response.json()["detail"]
    assert counts(db) == before


def test_a_chunked_body_over_the_limit_is_413_and_stores_nothing(api, db):
    before = counts(db)
    body = chunks(LIMIT + 1, b'{"name": "Ann", "email": "a@e.com"}')
    response = api.post("/policyholders", data=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 413)
    assert counts(db) == before


def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(api, db, live_server):
    """The body is never finished: the 413 comes while it is read, not after."""
    before = counts(db)
    pieces = [b'{"name": "Ann", "email": "a@e.com"}'] + [b" " * (64 * 1024)] * 33  # > 2 MB
    response = raw_post(
        live_server.base_url,
        "/api/v1/policyholders",
        {
            "Authorization": f"Bearer {api.key}",
            "Content-Type": "application/json",
            "Transfer-Encoding": "chunked",
        },
        chunked(*pieces),
    )
    assert response.status_code == 413, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert counts(db) == before


def test_a_body_of_exactly_the_limit_is_taken_chunked_or_not(api, db):
    for n, send in enumerate((lambda b: b, lambda b: iter([b[: LIMIT // 2], b[LIMIT // 2 :]]))):
        body = padded_json({"name": "Ann", "email": f"a{n}@e.com"}, LIMIT)
        response = api.post(
            "/policyholders", data=send(body), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 201, response.text[:300]
    assert counts(db)[0] == 2


def _multipart(content: bytes, boundary: str = "edge-boundary") -> tuple[bytes, bytes, str]:
    head = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="statement.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
    ).encode()
    return head + content, f"\r\n--{boundary}--\r\n".encode(), boundary


def test_a_bank_statement_has_its_own_larger_limit(api, db):
    # 2.5 MB: over MAX_CONTENT_LENGTH, within BANK_STATEMENT_MAX_LENGTH (a valid CSV: one line,
    # then blank lines).
    content = csv_file("2026-02-03,480.00,USD,Ann Lee,INV-2026-000001,B-1")
    content += b"\n" * (LIMIT + MB // 2 - len(content))
    response = api.post("/bank-statements", files={"file": ("big.csv", content)})
    assert response.status_code == 201, response.text[:300]
    assert (response.json()["lines"], response.json()["payments_created"]) == (1, 1)
    # The same size is too large for any other endpoint.
    too_big = padded_json({"name": "Ann", "email": "a@e.com"}, LIMIT + MB // 2)
    assert_problem(
        api.post("/policyholders", data=too_big, headers={"Content-Type": "application/json"}),
        413,
    )


def test_an_upload_over_its_limit_is_413_chunked_or_declared_and_stores_nothing(
    api, db, live_server
):
    before = counts(db)
    start, end, boundary = _multipart(csv_file("2026-02-03,480.00,USD,Ann Lee,INV-1,B-1"))
    content_type = f"multipart/form-data; boundary={boundary}"

    def body() -> Iterator[bytes]:
        yield start
        yield from chunks(UPLOAD_LIMIT, b"\n")
        yield end

    response = api.post("/bank-statements", data=body(), headers={"Content-Type": content_type})
    assert_problem(response, 413)
    declared = raw_post(
        live_server.base_url,
        "/api/v1/bank-statements",
        {
            "Authorization": f"Bearer {api.key}",
            "Content-Type": content_type,
            "Content-Length": str(100 * MB + 1),
        },
        [start],
    )
    assert declared.status_code == 413, declared.text
    assert counts(db) == before


def test_an_idempotent_upload_replays_the_same_file_and_refuses_another(api, db):
    first = csv_file("2026-02-03,480.00,USD,Ann Lee,INV-1,B-1")
    other = csv_file("2026-02-03,480.00,USD,Ann Lee,INV-1,B-2")
    headers = {"Idempotency-Key": "statement-2026-02-03"}

    def send(content: bytes) -> Any:
        return api.post("/bank-statements", files={"file": ("s.csv", content)}, headers=headers)

    created, replayed = send(first), send(first)
    assert created.status_code == replayed.status_code == 201, created.text
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json() == created.json()
    assert_problem(send(other), 409)
    assert counts(db)[2:4] == (1, 1)  # one statement, one line


# --- 10. depth -----------------------------------------------------------------------------


def test_json_nested_10000_deep_is_400_before_parsing(api, db):
    before = counts(db)
    json_headers = {"Content-Type": "application/json"}
    for body in (
        b"[" * 10_000 + b"]" * 10_000,
        b'{"name": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_000 + b', "email": "a@e.com"}',
        b"[" * 10_000,  # not even closed: a recursive parser would still dive
    ):
        problem = assert_problem(api.post("/policyholders", data=body, headers=json_headers), 400)
        assert "64" in problem["detail"]
    assert counts(db) == before


def test_the_depth_limit_is_exact_and_brackets_in_strings_do_not_count(api):
    json_headers = {"Content-Type": "application/json"}

    def nested(depth: int) -> bytes:  # the object itself is level 1
        return b'{"name": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b', "email": "a@e.com"}'

    at_limit = api.post("/policyholders", data=nested(64), headers=json_headers)
    assert at_limit.status_code == 422 and "name" in at_limit.json()["errors"]  # parsed
    assert_problem(api.post("/policyholders", data=nested(65), headers=json_headers), 400)
    brackets = "[{" * 90 + '\\"]'
    created = api.post("/policyholders", json={"name": brackets, "email": "a@e.com"})
    assert created.status_code == 201, created.text[:300]
    assert created.json()["name"] == brackets


def test_a_number_too_long_for_python_is_400_not_500(api, db):
    before = counts(db)
    body = b'{"amount": ' + b"1" * 5000 + b', "currency": "USD"}'
    response = api.post("/payments", data=body, headers={"Content-Type": "application/json"})
    assert_problem(response, 400)
    assert counts(db) == before


def test_the_limits_are_settings_with_these_defaults():
    defaults = Settings()
    assert defaults.max_content_length == 2 * MB
    assert defaults.bank_statement_max_length == 100 * MB
    assert defaults.webhook_max_length == MB
    assert defaults.json_max_depth == 64
    env = {"MAX_CONTENT_LENGTH": "1000", "JSON_MAX_DEPTH": "10", "HSTS_MAX_AGE": "0"}
    from_env = Settings.from_env(env)
    assert (from_env.max_content_length, from_env.json_max_depth, from_env.hsts_max_age) == (
        1000,
        10,
        0,
    )
    with pytest.raises(ValueError, match="MAX_CONTENT_LENGTH"):
        Settings.from_env({"MAX_CONTENT_LENGTH": "0"})
