"""Property: a payment's outcome does not depend on the road it came by. The same payments
and invoices, posted one at a time through the single-posting road (`posting.allocate`, what
the API's manual match calls) or all together as one batch (`posting.post`, what the
reconciliation run and the webhook drain call), end with the same status and amounts, the
same allocations and write-offs, the same journal legs and the same audit element each."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from premium_billing.audit.models import AuditLog
from premium_billing.errors import ServiceError
from premium_billing.invoicing.models import Invoice
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.payments import posting
from premium_billing.payments.models import Allocation, Payment, WriteOff
from tests.integration.ledger_helpers import issue_invoices, new_holder, new_policy, number

ON = date(2026, 2, 3)
_worlds = itertools.count(1)

case = st.fixed_dictionaries(
    {
        "totals": st.lists(st.integers(min_value=100, max_value=20000), min_size=1, max_size=2),
        "short": st.integers(min_value=0, max_value=300),  # left due on each invoice
        "extra": st.sampled_from([0, 0, 0, 1, 750]),  # left unapplied on the payment
        "known": st.booleans(),  # the payer known at receipt (credit) or not (suspense)
        "over": st.booleans(),  # ask one more than the first invoice has due: refused
        "write_off": st.booleans(),
    }
)


def _world(api: Any, db: Any, cases: list[dict[str, Any]], tag: str) -> list[dict[str, Any]]:
    """Policyholders, invoices and payments for the cases; what each case will post."""
    out = []
    for n, c in enumerate(cases):
        holder = new_holder(api)
        policy = new_policy(api, holder["id"])
        invoices = [number(i) for i in issue_invoices(db, policy["id"], c["totals"])]
        wanted = [max(1, t - min(c["short"], t - 1)) for t in c["totals"]]
        if c["over"]:
            wanted[0] = c["totals"][0] + 1
        with db.session() as s:
            payment = posting.create_payment(
                s,
                {
                    "amount": sum(wanted) + c["extra"],
                    "currency": "USD",
                    "method": "bank_transfer",
                    "received_on": ON,
                    "external_id": f"{tag}-{n}",
                    "policyholder_id": number(holder["id"]) if c["known"] else None,
                },
                source="bank_statement",
            )
        out.append(
            {
                "holder": number(holder["id"]),
                "payment": payment.id,
                "invoices": invoices,
                "plan": posting.Plan(
                    payment.id,
                    list(zip(invoices, wanted, strict=True)),
                    rule="prop",
                    write_off=c["write_off"],
                ),
            }
        )
    return out


def _outcome(db: Any, made: dict[str, Any]) -> dict[str, Any]:
    """Everything about one case's payment, its ids replaced by their place in the case."""
    pid = made["payment"]
    names = {("pay", pid): "P", ("ph", made["holder"]): "H"}
    names.update({("inv", i): f"I{k}" for k, i in enumerate(made["invoices"])})

    def name(kind: str, value: Any) -> Any:
        return None if value is None else names.get((kind, value), f"other {kind}")

    with db.session() as s:
        pay = s.get(Payment, pid)
        assert pay is not None
        invoices = [s.get(Invoice, i) for i in made["invoices"]]
        legs = s.execute(
            select(JournalEntry.kind, JournalLine.account, JournalLine.amount,
                   JournalLine.invoice_id, JournalLine.policyholder_id)
            .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
            .where(JournalLine.payment_id == pid)
        ).all()  # fmt: skip
        written = s.execute(
            select(WriteOff.invoice_id, WriteOff.amount, WriteOff.kind, WriteOff.reason).where(
                WriteOff.payment_id == pid
            )
        ).all()
        allocations = s.execute(
            select(Allocation.invoice_id, Allocation.amount, Allocation.reason).where(
                Allocation.payment_id == pid
            )
        ).all()
        audit = [
            row.after
            for row in s.scalars(
                select(AuditLog).where(AuditLog.action == "posted").order_by(AuditLog.seq)
            )
            if row.after.get("reason") != "received"
        ]
    elements = [
        [name("pay", pid), name("inv", number(row[1])) if row[1] else None, row[2], row[3],
         name("ph", row[4])]
        for body in audit
        for row in body["postings"]
        if row[0] == f"pay_{pid}"
    ]  # fmt: skip
    return {
        "payment": (pay.status, pay.amount_allocated, pay.amount_unapplied,
                    name("ph", pay.policyholder_id), pay.payer_from_match, pay.match_rule),
        "invoices": [(i.status, i.amount_paid, i.amount_written_off, i.amount_due)
                     for i in invoices if i is not None],
        "allocations": sorted((name("inv", i), a, r) for i, a, r in allocations),
        "write_offs": sorted((name("inv", i), a, k, r) for i, a, k, r in written),
        "legs": sorted((k, a, m, name("inv", i), name("ph", h)) for k, a, m, i, h in legs),
        "audit": elements,
    }  # fmt: skip


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(cases=st.lists(case, min_size=1, max_size=4))
def test_a_payment_posts_the_same_alone_or_in_a_batch(api, db, cases):
    from premium_billing.config import Settings

    config = Settings(database_url=db.url)
    alone = _world(api, db, cases, f"world-{next(_worlds)}")
    batched = _world(api, db, cases, f"world-{next(_worlds)}")

    refused_alone: dict[int, str] = {}
    for made in alone:
        plan = made["plan"]
        with db.session() as s:
            try:
                posting.allocate(
                    s, config, plan.payment_id, plan.allocations, reason="match",
                    rule=plan.rule, auto_write_off=plan.write_off, on=ON,
                )  # fmt: skip
            except ServiceError as error:
                s.rollback()
                refused_alone[plan.payment_id] = error.message
    with db.session() as s:
        refused_batch = posting.post(s, config, [m["plan"] for m in batched], on=ON)
        s.commit()

    for one, many in zip(alone, batched, strict=True):
        assert (one["payment"] in refused_alone) == (many["payment"] in refused_batch)
        assert refused_alone.get(one["payment"]) == refused_batch.get(many["payment"])
        assert _outcome(db, one) == _outcome(db, many)
