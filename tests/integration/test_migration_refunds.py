"""Upgrading a book with refunds paid before 0008_settle: a Stripe refund recorded `paid`
(money gone, its payout never journaled) gets its payout entry, so `ledger check` passes
on the upgraded database (refunds payable holds only what is still owed)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import create_engine, select, text

from premium_billing.bootstrap import database
from premium_billing.db.engine import normalize_url
from premium_billing.db.migrate import upgrade
from premium_billing.payments.models import Refund
from premium_billing.reports.check import check
from tests.integration.migration_helpers import empty_url  # noqa: F401 (a fixture)


def _old_book(url: str) -> None:
    """As 0008_guard's code left it: a Stripe payment of 50.00 received as the payer's
    credit, refunded in full through Stripe (`payment_refunded` to refunds payable, the
    refund `paid`, no payout entry)."""
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    engine = create_engine(normalize_url(url))
    with engine.begin() as conn:

        def one(sql: str, **values: object) -> int:
            return int(conn.execute(text(sql + " RETURNING id"), values).scalar_one())

        holder = one(
            "INSERT INTO policyholders (name, email, created_at, updated_at) "
            "VALUES ('Old Payer', 'old@example.com', :now, :now)",
            now=now,
        )
        payment = one(
            "INSERT INTO payments (source, method, external_id, amount, currency, received_on,"
            " policyholder_id, payer_from_match, amount_allocated, amount_refunded,"
            " amount_reversed, amount_unapplied, status, created_at, updated_at) VALUES"
            " ('stripe', 'card', 'pi_old', 5000, 'USD', '2026-05-30', :h, false, 0, 5000, 0,"
            " 0, 'refunded', :now, :now)",
            h=holder,
            now=now,
        )
        received = (("stripe_clearing", 5000, None), ("customer_credit", -5000, holder))
        refunded = (("customer_credit", 5000, holder), ("refunds_payable", -5000, holder))
        for kind, legs in (("payment_received", received), ("payment_refunded", refunded)):
            entry = one(
                "INSERT INTO journal_entries (kind, occurred_on, created_at) "
                "VALUES (:k, '2026-05-30', :now)",
                k=kind,
                now=now,
            )
            for account, amount, tagged in legs:
                conn.execute(
                    text(
                        "INSERT INTO journal_lines (entry_id, account, currency, amount,"
                        " payment_id, policyholder_id) VALUES (:e, :a, 'USD', :m, :p, :h)"
                    ),
                    {"e": entry, "a": account, "m": amount, "p": payment, "h": tagged},
                )
        conn.execute(
            text(
                "INSERT INTO refunds (payment_id, amount, currency, status, reason, entry_id,"
                " created_at) VALUES (:p, 5000, 'USD', 'paid', 'stripe charge.refunded', :e,"
                " :now)"
            ),
            {"p": payment, "e": entry, "now": now},
        )
    engine.dispose()


def test_a_refund_paid_before_the_upgrade_is_journaled_as_paid_out(empty_url: str) -> None:  # noqa: F811
    upgrade(empty_url, "0008_guard")
    _old_book(empty_url)
    upgrade(empty_url)
    db = database(empty_url)
    try:
        with db.session() as session:
            assert check(session) == []
            refund = session.scalars(select(Refund)).one()
            assert (refund.status, refund.channel, refund.paid_on.isoformat()) == (
                "succeeded", "stripe", "2026-06-01",
            )  # fmt: skip
            assert refund.paid_entry_id is not None
    finally:
        db.dispose()
