"""Issue 12, edges: input is never a 500. Request ids (8) and strings (9): a NUL, an unpaired
surrogate or a string longer than its column is a 422 naming the field, in any field of any
schema — the OpenAPI document is walked so that a new field cannot forget the rule."""

from __future__ import annotations

import re
from typing import Any

import pytest
from marshmallow import fields, validate
from sqlalchemy import func, select

from premium_billing.audit.models import AuditLog
from premium_billing.http.schemas import String
from premium_billing.payments.models import Payment
from premium_billing.policies.models import Policy, Policyholder, PremiumLine
from premium_billing.reconciliation.models import BankStatement
from premium_billing.text import NUL_MESSAGE, SURROGATE_MESSAGE
from tests.factories import create_policy, create_policyholder, pet_line, policy_body

MODELS = (Policyholder, Policy, PremiumLine, Payment, BankStatement, AuditLog)


def counts(db: Any) -> tuple[int, ...]:
    with db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in MODELS)


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert field in body.get("errors", {}), body
        assert field in body["detail"]
    return body


# --- 8. X-Request-Id --------------------------------------------------------------------


def _audited_request_ids(db: Any) -> set[str | None]:
    with db.session() as s:
        return set(s.scalars(select(AuditLog.request_id).where(AuditLog.actor_kind == "api_key")))


@pytest.mark.parametrize(
    "given",
    ["r" * 101, "a" * 5000, "has space", "semi;colon", "x/y", "<script>", "é-accent", "a\x00b"],
    ids=["101 chars", "5000 chars", "space", "semicolon", "slash", "markup", "non-ascii", "NUL"],
)
def test_an_unsafe_request_id_is_replaced_by_ours_and_the_write_is_audited(api, db, given):
    headers = {"X-Request-Id": given.encode().decode("latin-1")}
    response = api.post("/policyholders", json={"name": "Ann", "email": "a@e.com"}, headers=headers)
    assert response.status_code == 201, response.text
    ours = response.headers["X-Request-Id"]
    assert ours != given and re.fullmatch(r"[0-9a-f]{32}", ours)
    assert _audited_request_ids(db) == {ours}


def test_a_safe_request_id_is_kept_echoed_and_audited(api, db):
    given = "Req-1.2:3_" + "x" * 90  # 100 characters: the audit column's width
    response = api.post(
        "/policyholders", json={"name": "Ann", "email": "a@e.com"}, headers={"X-Request-Id": given}
    )
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-Id"] == given
    assert _audited_request_ids(db) == {given}
    # Refusals carry an id too (ours, when the client sent none).
    refused = api.post("/policyholders", json={}, headers={"X-Request-Id": "a" * 101})
    assert refused.status_code == 422 and re.fullmatch(
        r"[0-9a-f]{32}", refused.headers["X-Request-Id"]
    )


@pytest.mark.parametrize("key", ["a\x00b", "a\x7fb", "a\tb", "x" * 256])
def test_an_unprintable_or_overlong_idempotency_key_is_400(api, db, key):
    before = counts(db)
    response = api.post(
        "/policyholders", json={"name": "Ann", "email": "a@e.com"}, headers={"Idempotency-Key": key}
    )
    assert_problem(response, 400, "Idempotency-Key")
    assert counts(db) == before


# --- 9. strings: NUL, unpaired surrogates, lengths ----------------------------------------


def _payment_body(**overrides: Any) -> dict[str, Any]:
    body = {"amount": 1000, "currency": "USD", "method": "check", "received_on": "2026-02-03"}
    body.update(overrides)
    return body


def _nested(path: str, value: Any) -> dict[str, Any]:
    """{"lines": [{"pet": {"name": value}}]} from "lines.0.pet.name"."""
    parts = path.split(".")
    node: Any = value
    for part in reversed(parts[1:]):
        node = [node] if part.isdigit() else {part: node}
    return {parts[0]: node}


BAD_STRINGS = [
    ("NUL", "a\x00b", NUL_MESSAGE),
    ("surrogate", "\ud800x", SURROGATE_MESSAGE),
]


@pytest.mark.parametrize("kind,value,message", BAD_STRINGS, ids=[k for k, _, _ in BAD_STRINGS])
def test_a_bad_string_in_the_named_fields_is_422_and_writes_nothing(api, db, kind, value, message):
    holder = create_policyholder(api)
    policy = create_policy(api, holder["id"])
    payment = api.post("/payments", json=_payment_body()).json()
    before = counts(db)
    holder_body = {"name": "A", "email": "a@e.com"}
    cancel = f"/policies/{policy['id']}/cancellations"
    cases = [
        ("/policyholders", {"name": value, "email": "a@e.com"}, "name"),
        ("/policyholders", holder_body | {"external_ref": value}, "external_ref"),
        ("/policyholders", holder_body | {"phone": value}, "phone"),
        ("/policyholders", holder_body | {"address": {"city": value}}, "address.city"),
        ("/policyholders", holder_body | {value: 1}, value),  # a key
        ("/policies", policy_body(holder["id"], policy_number=value), "policy_number"),
        ("/policies", policy_body(holder["id"], lines=[pet_line(value)]), "lines.0.description"),
        ("/payments", _payment_body(reference=value), "reference"),
        ("/payments", _payment_body(payer_name=value), "payer_name"),
        ("/payments", _payment_body(external_id=value), "external_id"),
        (f"/payments/{payment['id']}/refunds", {"amount": 1, "reason": value}, "reason"),
        (cancel, {"effective_date": "2026-03-01", "reason": value}, "reason"),
    ]
    for path, body, field in cases:
        body = assert_problem(api.post(path, json=body), 422, field)
        assert message in body["errors"][field], (path, body)
    patched = api.patch(f"/policyholders/{holder['id']}", json={"name": value})
    assert message in assert_problem(patched, 422, "name")["errors"]["name"]
    assert counts(db) == before
    assert api.get(f"/policyholders/{holder['id']}").json()["name"] == holder["name"]


def test_a_nul_in_a_query_filter_is_422_naming_it(api):
    create_policy(api)
    for path, field in [
        ("/policies?policy_number=a%00b", "policy_number"),
        ("/policies?starting_after=pol_1%00", "starting_after"),
        ("/invoices?status=open%00", "status"),
        ("/payments?policyholder_id=ph_1%00", "policyholder_id"),
        ("/policies?a%00b=1", "a\x00b"),
    ]:
        body = assert_problem(api.get(path), 422, field)
        assert body["errors"][field] == [NUL_MESSAGE]
    assert api.get("/policies?policy_number=PET-000123").json()["data"][0]["policy_number"] == (
        "PET-000123"
    )


def test_a_nul_in_a_form_field_or_a_file_name_is_422(api, db):
    before = counts(db)
    response = api.post(
        "/bank-statements", files={"file": ("s.csv", b"x")}, data={"format": "csv\x00"}
    )
    assert assert_problem(response, 422, "format")["errors"]["format"] == [NUL_MESSAGE]
    # requests escapes control characters in file names: build the part by hand.
    boundary = "b0undary"
    body = (
        f"--{boundary}\r\n"
        'Content-Disposition: form-data; name="file"; filename="a\x00b.csv"\r\n'
        "Content-Type: text/csv\r\n\r\n"
        "date,amount\r\n"
        f"\r\n--{boundary}--\r\n"
    ).encode()
    response = api.post(
        "/bank-statements",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert assert_problem(response, 422, "file")["errors"]["file"] == [NUL_MESSAGE]
    assert counts(db) == before


def test_a_valid_email_longer_than_its_column_is_422_and_one_that_fits_is_stored(api, db):
    at_the_limit = "a" * 64 + "@" + ".".join(["b" * 63] * 3) + "." + "c" * 63  # 320
    assert len(at_the_limit) == 320
    created = api.post("/policyholders", json={"name": "A", "email": at_the_limit})
    assert created.status_code == 201, created.text
    assert created.json()["email"] == at_the_limit
    before = counts(db)
    too_long = "a" * 64 + "@" + ".".join(["b" * 63] * 4) + ".com"
    assert len(too_long) > 320
    assert_problem(api.post("/policyholders", json={"name": "A", "email": too_long}), 422, "email")
    assert counts(db) == before


# Each stored string at its column's width is stored (on PostgreSQL a wider value would be a
# DataError, a 500); one character more is a 422 naming the field.
def _line(**changes: str) -> dict[str, Any]:
    return {"lines": [{**pet_line(), **changes}]}


def _pet(**pet: str) -> dict[str, Any]:
    line = pet_line()
    return {"lines": [{**line, "pet": {**line["pet"], **pet}}]}


WIDTHS = [
    ("/policyholders", lambda v: {"name": v}, "name", Policyholder.name),
    ("/policyholders", lambda v: {"phone": v}, "phone", Policyholder.phone),
    ("/policyholders", lambda v: {"external_ref": v}, "external_ref", Policyholder.external_ref),
    ("/policies", lambda v: {"policy_number": v}, "policy_number", Policy.policy_number),
    ("/policies", lambda v: _line(description=v), "lines.0.description", PremiumLine.description),
    ("/policies", lambda v: _pet(name=v), "lines.0.pet.name", PremiumLine.pet_name),
    ("/policies", lambda v: _pet(species=v), "lines.0.pet.species", PremiumLine.pet_species),
    ("/policies", lambda v: _pet(breed=v), "lines.0.pet.breed", PremiumLine.pet_breed),
    ("/payments", lambda v: {"reference": v}, "reference", Payment.reference),
    ("/payments", lambda v: {"payer_name": v}, "payer_name", Payment.payer_name),
    ("/payments", lambda v: {"external_id": v}, "external_id", Payment.external_id),
]  # fmt: skip


@pytest.mark.parametrize(
    "path,change,field,column", WIDTHS, ids=[f"{p}:{f}" for p, _, f, _ in WIDTHS]
)
def test_a_string_as_wide_as_its_column_is_stored_and_one_wider_is_422(
    api, db, path, change, field, column
):
    holder = create_policyholder(api, email="holder@example.com")
    bases = {
        "/policyholders": lambda n: {"name": "A", "email": f"a{n}@e.com"},
        "/policies": lambda n: policy_body(holder["id"], policy_number=f"PET-{n}"),
        "/payments": lambda n: _payment_body(),
    }
    width = column.type.length
    fits = api.post(path, json=bases[path](1) | change("x" * width))
    assert fits.status_code == 201, fits.text
    before = counts(db)
    assert_problem(api.post(path, json=bases[path](2) | change("y" * (width + 1))), 422, field)
    assert counts(db) == before


# --- the generic walk: every string of every operation of the OpenAPI document -----------


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = doc["components"]["schemas"][name]
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:  # a nullable nested schema: {"anyOf": [{"$ref": …}, {nullable}]}
            refs = [s for s in schema[key] if "$ref" in s]
            if refs:
                return _resolve(doc, refs[0])
    return schema


def string_leaves(doc: dict[str, Any], schema: dict[str, Any], path: str = ""):
    """(dotted path, schema) of every property a client may send as a string."""
    schema = _resolve(doc, schema)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        for name, prop in schema.get("properties", {}).items():
            if not _resolve(doc, prop).get("readOnly"):
                yield from string_leaves(doc, prop, f"{path}.{name}" if path else name)
    elif kind == "array":
        yield from string_leaves(doc, schema["items"], f"{path}.0")
    elif kind in (None, "string"):
        yield path, schema


def operations(doc: dict[str, Any]):
    """(method, path, json leaves, form leaves, query leaves) of every operation."""
    for template, item in doc["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            path = re.sub(r"\{[^}]+\}", "x_1", template).removeprefix("/api/v1")
            content = op.get("requestBody", {}).get("content", {})
            json_leaves = (
                list(string_leaves(doc, content["application/json"]["schema"]))
                if ("application/json" in content)
                else []
            )
            form_leaves = []
            if "multipart/form-data" in content:
                form_leaves = list(string_leaves(doc, content["multipart/form-data"]["schema"]))
            query, form = [], []
            for param in op.get("parameters", []):
                schema = _resolve(doc, param.get("schema", {}))
                if schema.get("type") in (None, "string"):
                    (query if param["in"] == "query" else form).append((param["name"], schema))
            yield method.upper(), path, json_leaves, form_leaves + form, query


def _bounded(schema: dict[str, Any]) -> bool:
    return (
        "maxLength" in schema
        or "enum" in schema
        or "pattern" in schema
        or schema.get("format") in ("date", "date-time", "binary")
    )


def test_every_string_of_every_operation_refuses_nul_and_surrogates_and_is_bounded(api, db):
    doc = api.as_key(None).get("/openapi.json").json()
    before = counts(db)
    failures: list[str] = []
    seen = 0

    def expect(response: Any, field: str, message: str | None, what: str) -> None:
        nonlocal seen
        seen += 1
        try:
            body = assert_problem(response, 422, field)
            if message is not None:
                assert message in body["errors"][field], body
        except AssertionError as error:
            failures.append(f"{what} {field}: {error}")

    for method, path, json_leaves, form_leaves, query in operations(doc):
        what = f"{method} {path}"
        for field, schema in json_leaves + form_leaves + query:
            if not _bounded(schema):
                failures.append(f"{what} {field}: no maxLength, enum, pattern or format")
        for field, schema in json_leaves:
            for _, value, message in BAD_STRINGS:
                expect(api.request(method, path, json=_nested(field, value)), field, message, what)
            if "maxLength" in schema:
                long = "x" * (schema["maxLength"] + 1)
                expect(api.request(method, path, json=_nested(field, long)), field, None, what)
        for field, schema in form_leaves:
            if schema.get("format") == "binary":
                continue  # file names: test_a_nul_in_a_form_field_or_a_file_name_is_422
            files = {"file": ("s.csv", b"x")}
            sent = api.request(method, path, data={field: "a\x00b"}, files=files)
            expect(sent, field, NUL_MESSAGE, what)
        for field, _schema in query:
            expect(api.request(method, f"{path}?{field}=a%00b"), field, NUL_MESSAGE, what)
        if "x_1" in path:  # a path parameter: a malformed id is not found, never a 500
            response = api.request(method, path.replace("x_1", "x_1%00"), json={})
            if response.status_code not in (404, 422):
                failures.append(f"{what}: a NUL in the path is a {response.status_code}")
    assert failures == []
    assert seen > 60  # the walk found the API's strings
    assert counts(db) == before


def _argument_schemas(app: Any):
    """Every marshmallow schema an API view loads its arguments with (flask-smorest)."""
    for endpoint, view in app.view_functions.items():
        handlers = [view]
        if hasattr(view, "view_class"):
            handlers = [getattr(view.view_class, m.lower()) for m in view.view_class.methods]
        for handler in handlers:
            for param in getattr(handler, "_apidoc", {}).get("arguments", {}).get("parameters", []):
                schema = param["schema"]
                yield endpoint, schema() if isinstance(schema, type) else schema


def _string_fields(schema: Any, prefix: str = ""):
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            yield from _string_fields(inner.schema, f"{prefix}{name}.")
        elif isinstance(inner, fields.String):
            yield f"{prefix}{name}", inner


def test_every_string_field_the_api_loads_is_bounded_and_fits_its_column(app):
    """Each string field of each schema the API loads has a maximum length or a list of
    values; a project String declared with its column is no wider than the column."""
    checked = 0
    for endpoint, schema in _argument_schemas(app):
        for name, field in _string_fields(schema):
            checked += 1
            lengths = [v.max for v in field.validators if isinstance(v, validate.Length)]
            choices = [v for v in field.validators if isinstance(v, validate.OneOf)]
            assert any(m is not None for m in lengths) or choices, f"{endpoint} {name}"
            if isinstance(field, String) and field.column is not None:
                assert field.max_length == field.column.type.length, f"{endpoint} {name}"
    assert checked >= 25


def test_a_form_part_whose_name_cannot_be_read_is_never_a_500(api, db):
    """Schemathesis: a multipart part named with a trailing backslash (werkzeug reads no
    name) was a 500 in the text guard."""
    body = (
        b'--B\r\nContent-Disposition: form-data; name="\xf3\xa1\xbb\xa6\xc2\x8f\\"\r\n\r\n{}\r\n'
        b'--B\r\nContent-Disposition: form-data; name="nil"\r\n\r\n194\r\n--B--\r\n'
    )
    response = api.post(
        "/bank-statements", data=body, headers={"Content-Type": "multipart/form-data; boundary=B"}
    )
    assert response.status_code == 422, response.text
