"""The audit trail: every change with its actor, hash-chained; `premium-billing audit
verify` names the first edited, deleted or reordered row."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from premium_billing.actor import Actor, acting_as
from premium_billing.audit import trail as audit
from premium_billing.audit.models import AuditLog
from tests.integration.ledger_helpers import cli, issue_invoice, new_policy, pay


def _flow(api, db):
    policy = new_policy(api)
    inv = issue_invoice(db, policy["id"], 4000)
    payment = pay(api, 4000)
    response = api.post(
        f"/payments/{payment['id']}/allocations",
        json={"allocations": [{"invoice_id": inv, "amount": 4000}]},
        headers={"X-Request-Id": "req-match-1"},
    )
    assert response.status_code == 201
    return policy, inv, payment


def _rows(db):
    with db.session() as session:
        return list(session.scalars(select(AuditLog).order_by(AuditLog.seq)))


def _unguarded(db, backend, *statements):
    """Run SQL on audit_log past its append-only triggers, as an intruder would."""
    with db.engine.begin() as conn:
        if backend == "postgresql":
            conn.execute(text("ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only"))
        else:
            conn.execute(text("DROP TRIGGER audit_log_no_update"))
            conn.execute(text("DROP TRIGGER audit_log_no_delete"))
        for statement, params in statements:
            conn.execute(text(statement), params)
        if backend == "postgresql":
            conn.execute(text("ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only"))


def test_changes_are_recorded_with_actor_request_and_before_after(api, db):
    policy, inv, payment = _flow(api, db)
    rows = _rows(db)
    assert [r.seq for r in rows] == list(range(1, len(rows) + 1))
    created = [r for r in rows if r.entity == "policies" and r.action == "create"]
    assert created and created[0].actor_kind == "api_key" and created[0].actor_name == "ops"
    assert created[0].after["policy_number"] == policy["policy_number"]
    match_rows = [r for r in rows if r.request_id == "req-match-1"]
    # A money movement is one audit row per posting batch (the posting engine), naming every
    # payment, invoice and amount it moved; a manual match is a batch of one.
    (posted,) = [r for r in match_rows if (r.action, r.entity) == ("posted", "postings")]
    assert posted.after["reason"] == "manual"
    assert [kind for kind, _, _ in posted.after["entries"]] == ["payment_allocated"]
    assert posted.after["layout"] == ["payment", "invoice", "allocated", "written_off",
                                      "policyholder"]  # fmt: skip
    holder = int(policy["policyholder_id"].split("_")[1])
    assert posted.after["postings"] == [[payment["id"], inv, 4000, 0, holder]]
    assert all(r.actor_id.startswith("key_") for r in match_rows)


def test_explicit_records_and_rollbacks(db):
    with db.session() as session, acting_as(Actor(kind="job", id="run_7", name="issue_invoices")):
        audit.record(session, "issued", "invoices", None, after={"ids": [1, 2, 3]})
        session.commit()
    with db.session() as session:
        audit.record(session, "never", "invoices", None)
        session.rollback()
        session.commit()
    rows = _rows(db)
    assert [(r.action, r.actor_kind, r.actor_id) for r in rows] == [("issued", "job", "run_7")]
    with db.session() as session:
        assert audit.verify(session).problem is None


def test_verify_passes_on_an_intact_trail(api, db, database_url):
    _flow(api, db)
    result = cli(database_url, "audit", "verify")
    assert result.returncode == 0, result.stderr
    assert f"{len(_rows(db))} row(s)" in result.stdout


def test_audit_log_is_append_only(api, db):
    _flow(api, db)
    for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), db.engine.begin() as conn:
            conn.execute(text(statement))


def test_verify_names_an_edited_row(api, db, database_url, backend):
    _flow(api, db)
    target = _rows(db)[3]
    _unguarded(
        db,
        backend,
        ("UPDATE audit_log SET actor_name = 'someone else' WHERE id = :id", {"id": target.id}),
    )
    result = cli(database_url, "audit", "verify")
    assert result.returncode == 1
    assert f"row id {target.id} (seq {target.seq})" in result.stderr
    assert "edited" in result.stderr


def test_verify_names_the_row_after_a_deleted_one(api, db, database_url, backend):
    _flow(api, db)
    rows = _rows(db)
    _unguarded(db, backend, ("DELETE FROM audit_log WHERE id = :id", {"id": rows[2].id}))
    result = cli(database_url, "audit", "verify")
    assert result.returncode == 1
    assert f"row id {rows[3].id} (seq {rows[3].seq})" in result.stderr
    assert "missing" in result.stderr


def test_verify_names_reordered_rows(api, db, database_url, backend):
    _flow(api, db)
    rows = _rows(db)
    a, b = rows[1], rows[2]
    _unguarded(
        db,
        backend,
        ("UPDATE audit_log SET seq = -1 WHERE id = :id", {"id": a.id}),
        ("UPDATE audit_log SET seq = :s WHERE id = :id", {"id": b.id, "s": a.seq}),
        ("UPDATE audit_log SET seq = :s WHERE id = :id", {"id": a.id, "s": b.seq}),
    )
    result = cli(database_url, "audit", "verify")
    assert result.returncode == 1
    assert f"row id {b.id} (seq {a.seq})" in result.stderr


def test_verify_notices_a_deleted_tail(api, db, database_url, backend):
    _flow(api, db)
    last = _rows(db)[-1]
    _unguarded(db, backend, ("DELETE FROM audit_log WHERE id = :id", {"id": last.id}))
    result = cli(database_url, "audit", "verify")
    assert result.returncode == 1
    assert "chain head" in result.stderr


def test_verify_notices_rehashed_content_against_the_chain(api, db, backend):
    # An intruder who recomputes the edited row's own hash still breaks the next link.
    _flow(api, db)
    rows = _rows(db)
    target = rows[2]
    content = {
        "seq": target.seq,
        "occurred_at": target.occurred_at.isoformat(),
        "actor_kind": target.actor_kind,
        "actor_id": target.actor_id,
        "actor_name": "forged",
        "request_id": target.request_id,
        "action": target.action,
        "entity": target.entity,
        "entity_id": target.entity_id,
        "before": target.before,
        "after": target.after,
    }
    from premium_billing.audit.chain import row_hash

    forged = row_hash(target.prev_hash, content)
    _unguarded(
        db,
        backend,
        (
            "UPDATE audit_log SET actor_name = 'forged', hash = :h WHERE id = :id",
            {"h": forged, "id": target.id},
        ),
    )
    with db.session() as session:
        problem = audit.verify(session).problem
    assert problem is not None and problem.row_id == rows[3].id
    assert "link" in problem.reason
