"""`ledger check`: recompute every invoice, payment and account balance from the journal
and name each that disagrees."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import status_consistent
from premium_billing.ledger import journal
from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.payments.models import Allocation, InvoiceCredit, Payment, Refund


def _sum_by(session: Session, *keys, where=()):  # type: ignore[no-untyped-def]
    stmt = (
        select(*keys, func.sum(JournalLine.amount))
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(*where)
        .group_by(*keys)
    )
    return {tuple(row[:-1]): int(row[-1]) for row in session.execute(stmt)}


def check(session: Session) -> list[str]:
    """Every difference between the stored balances and the journal (empty: all agree)."""
    problems: list[str] = []

    # 1. Every entry balances in each currency.
    unbalanced = session.execute(
        select(JournalLine.entry_id, JournalLine.currency, func.sum(JournalLine.amount))
        .group_by(JournalLine.entry_id, JournalLine.currency)
        .having(func.sum(JournalLine.amount) != 0)
        .order_by(JournalLine.entry_id)
    ).all()
    for entry_id, currency, amount in unbalanced:
        problems.append(
            f"journal entry {entry_id} does not balance in {currency}: {int(amount):+d}"
        )

    # Every entry is of a kind the chart defines.
    for entry_id, kind in session.execute(
        select(JournalEntry.id, JournalEntry.kind)
        .where(JournalEntry.kind.not_in(sorted(ledger.ENTRY_KINDS)))
        .order_by(JournalEntry.id)
    ):
        problems.append(f"journal entry {entry_id} has the unknown kind {kind!r}")

    receivable = JournalLine.account == ledger.PREMIUM_RECEIVABLE

    # 2. Invoice totals: the issue entry's untagged receivable debit per currency equals the
    #    totals of the invoices that point at it (as issued: net total + amount credited).
    issued = _sum_by(
        session,
        JournalLine.entry_id,
        JournalLine.currency,
        where=(
            receivable,
            JournalLine.invoice_id.is_(None),
            JournalEntry.kind == ledger.INVOICE_ISSUED,
        ),
    )
    invoiced = {
        (entry_id, currency): int(total)
        for entry_id, currency, total in session.execute(
            select(
                Invoice.issue_entry_id,
                Invoice.currency,
                func.sum(Invoice.total + Invoice.amount_credited),
            )
            .where(Invoice.issue_entry_id.is_not(None))
            .group_by(Invoice.issue_entry_id, Invoice.currency)
        )
    }
    for key in sorted(set(issued) | set(invoiced), key=lambda k: (k[0], k[1])):
        if issued.get(key, 0) != invoiced.get(key, 0):
            problems.append(
                f"journal entry {key[0]} ({key[1]}): receivable debit {issued.get(key, 0)} but "
                f"its invoices total {invoiced.get(key, 0)}"
            )
    missing = session.scalar(
        select(func.count())
        .select_from(Invoice)
        .where(Invoice.issue_entry_id.is_(None), Invoice.total + Invoice.amount_credited != 0)
    )
    if missing:
        problems.append(f"{missing} invoice(s) with a total have no issue journal entry")

    # 3. Per invoice: amount paid and written off from the lines that carry its id.
    paid = _sum_by(
        session,
        JournalLine.invoice_id,
        where=(receivable, JournalEntry.kind.in_(ledger.PAID_KINDS)),
    )
    written = _sum_by(
        session,
        JournalLine.invoice_id,
        where=(receivable, JournalEntry.kind.in_(ledger.WRITEOFF_KINDS)),
    )
    credited = _sum_by(
        session,
        JournalLine.invoice_id,
        where=(receivable, JournalEntry.kind.in_(ledger.CREDIT_KINDS)),
    )
    credit_notes = {
        int(invoice_id): int(total)
        for invoice_id, total in session.execute(
            select(InvoiceCredit.invoice_id, func.sum(InvoiceCredit.amount)).group_by(
                InvoiceCredit.invoice_id
            )
        )
    }
    allocated = {
        int(invoice_id): int(total)
        for invoice_id, total in session.execute(
            select(Allocation.invoice_id, func.sum(Allocation.amount)).group_by(
                Allocation.invoice_id
            )
        )
    }
    for inv in session.execute(
        select(
            Invoice.id,
            Invoice.number,
            Invoice.status,
            Invoice.total,
            Invoice.amount_paid,
            Invoice.amount_written_off,
            Invoice.amount_due,
            Invoice.amount_credited,
        ).order_by(Invoice.id)
    ):
        journal_paid = -paid.get((inv.id,), 0)
        journal_written = -written.get((inv.id,), 0)
        if journal_paid != inv.amount_paid:
            problems.append(
                f"invoice {inv.number}: amount_paid {inv.amount_paid}, journal {journal_paid}"
            )
        if allocated.get(inv.id, 0) != inv.amount_paid:
            problems.append(
                f"invoice {inv.number}: amount_paid {inv.amount_paid}, "
                f"allocations {allocated.get(inv.id, 0)}"
            )
        if journal_written != inv.amount_written_off:
            problems.append(
                f"invoice {inv.number}: amount_written_off {inv.amount_written_off}, "
                f"journal {journal_written}"
            )
        journal_credited = -credited.get((inv.id,), 0)
        if journal_credited != inv.amount_credited:
            problems.append(
                f"invoice {inv.number}: amount_credited {inv.amount_credited}, "
                f"journal {journal_credited}"
            )
        if credit_notes.get(inv.id, 0) != inv.amount_credited:
            problems.append(
                f"invoice {inv.number}: amount_credited {inv.amount_credited}, "
                f"credit notes {credit_notes.get(inv.id, 0)}"
            )
        if inv.status != "void":
            expected_due = inv.total - journal_paid - journal_written
            if inv.amount_due != expected_due:
                problems.append(
                    f"invoice {inv.number}: amount_due {inv.amount_due}, journal {expected_due}"
                )
        if not status_consistent(inv.status, inv.total, inv.amount_paid, inv.amount_written_off):
            problems.append(
                f"invoice {inv.number}: status {inv.status!r} does not follow from its amounts"
            )

    # 4. Per payment: received, allocated, refunded, reversed and unapplied from the journal.
    by_payment = _sum_by(
        session,
        JournalLine.payment_id,
        JournalEntry.kind,
        JournalLine.account,
        where=(JournalLine.payment_id.is_not(None),),
    )
    per: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    holding = {ledger.UNAPPLIED_CASH, ledger.CUSTOMER_CREDIT}
    for (payment_id, kind, account), amount in by_payment.items():
        facts = per[int(payment_id)]
        if kind == ledger.PAYMENT_RECEIVED and account in (
            ledger.CASH_BANK,
            ledger.STRIPE_CLEARING,
        ):
            facts["received"] += amount
        if kind in ledger.PAID_KINDS and account == ledger.PREMIUM_RECEIVABLE:
            facts["allocated"] -= amount
        if kind in ledger.REFUNDED_KINDS and account == ledger.REFUNDS_PAYABLE:
            facts["refunded"] -= amount
        if kind == ledger.PAYMENT_REVERSED and account not in holding:
            facts["reversed"] -= amount
        if account in holding:
            facts["unapplied"] -= amount
        if account == ledger.UNAPPLIED_CASH:
            facts["suspense"] -= amount
    payment_rows = session.execute(
        select(
            Payment.id,
            Payment.currency,
            Payment.receipt_entry_id,
            Payment.amount,
            Payment.amount_allocated,
            Payment.amount_refunded,
            Payment.amount_reversed,
            Payment.amount_unapplied,
            Payment.policyholder_id,
        ).order_by(Payment.id)
    )
    # A payment without a cash debit of its own was received in an entry whose debit is one
    # untagged line per currency for all of its payments (`posting.receive(cash_per_entry=
    # True)`): that line must equal the amounts of the payments pointing at the entry.
    by_entry: dict[tuple[int, str], int] = defaultdict(int)
    for pay in payment_rows:
        facts = per.get(pay.id, {})
        if "received" not in facts and pay.receipt_entry_id is not None:
            by_entry[(pay.receipt_entry_id, pay.currency)] += pay.amount
            facts = {**facts, "received": pay.amount}
        stored = {
            "received": pay.amount,
            "allocated": pay.amount_allocated,
            "refunded": pay.amount_refunded,
            "reversed": pay.amount_reversed,
            "unapplied": pay.amount_unapplied,
            # Held in suspense while the payer is unknown, in their credit once known (the
            # KPIs' suspense as of a past day counts on it: `reports.kpis`).
            "suspense": pay.amount_unapplied if pay.policyholder_id is None else 0,
        }
        for name, value in stored.items():
            if facts.get(name, 0) != value:
                problems.append(
                    f"payment pay_{pay.id}: {name} {value}, journal {facts.get(name, 0)}"
                )

    cash_debits = _sum_by(
        session,
        JournalLine.entry_id,
        JournalLine.currency,
        where=(
            JournalLine.account.in_((ledger.CASH_BANK, ledger.STRIPE_CLEARING)),
            JournalLine.payment_id.is_(None),
            JournalEntry.kind == ledger.PAYMENT_RECEIVED,
        ),
    )
    for key in sorted(set(cash_debits) | set(by_entry)):
        if cash_debits.get(key, 0) != by_entry.get(key, 0):
            problems.append(
                f"journal entry {key[0]} ({key[1]}): cash debit {cash_debits.get(key, 0)} but "
                f"its payments received {by_entry.get(key, 0)}"
            )

    # 5. Account balances: suspense, each policyholder's credit, receivable per currency.
    credit_journal = _sum_by(
        session,
        JournalLine.policyholder_id,
        JournalLine.currency,
        where=(JournalLine.account == ledger.CUSTOMER_CREDIT,),
    )
    credit_stored = {
        (holder, currency): int(total)
        for holder, currency, total in session.execute(
            select(Payment.policyholder_id, Payment.currency, func.sum(Payment.amount_unapplied))
            .where(Payment.policyholder_id.is_not(None))
            .group_by(Payment.policyholder_id, Payment.currency)
        )
    }
    for key in sorted(set(credit_journal) | set(credit_stored), key=str):
        if -credit_journal.get(key, 0) != credit_stored.get(key, 0):
            problems.append(
                f"customer credit of ph_{key[0]} ({key[1]}): payments {credit_stored.get(key, 0)}"
                f", journal {-credit_journal.get(key, 0)}"
            )
    suspense_journal = _sum_by(
        session, JournalLine.currency, where=(JournalLine.account == ledger.UNAPPLIED_CASH,)
    )
    suspense_stored = {
        (currency,): int(total)
        for currency, total in session.execute(
            select(Payment.currency, func.sum(Payment.amount_unapplied))
            .where(Payment.policyholder_id.is_(None))
            .group_by(Payment.currency)
        )
    }
    for key in sorted(set(suspense_journal) | set(suspense_stored)):
        if -suspense_journal.get(key, 0) != suspense_stored.get(key, 0):
            problems.append(
                f"suspense ({key[0]}): payments {suspense_stored.get(key, 0)}, "
                f"journal {-suspense_journal.get(key, 0)}"
            )
    # Refunds payable: what the refunds not paid out (pending, or failed at Stripe) owe.
    payable_journal = _sum_by(
        session, JournalLine.currency, where=(JournalLine.account == ledger.REFUNDS_PAYABLE,)
    )
    payable_stored = {
        (currency,): int(total)
        for currency, total in session.execute(
            select(Refund.currency, func.sum(Refund.amount))
            .where(Refund.status.in_(("pending", "failed")))
            .group_by(Refund.currency)
        )
    }
    for key in sorted(set(payable_journal) | set(payable_stored)):
        if -payable_journal.get(key, 0) != payable_stored.get(key, 0):
            problems.append(
                f"refunds payable ({key[0]}): refunds owed {payable_stored.get(key, 0)}, "
                f"journal {-payable_journal.get(key, 0)}"
            )
    # Each refund paid out has its payout entry, and only those.
    for refund_id, status, paid_entry in session.execute(
        select(Refund.id, Refund.status, Refund.paid_entry_id)
        .where(
            (Refund.status == "succeeded") != Refund.paid_entry_id.is_not(None),
        )
        .order_by(Refund.id)
    ):
        problems.append(f"refund re_{refund_id}: status {status!r} but payout entry {paid_entry!r}")
    receivable_journal = _sum_by(session, JournalLine.currency, where=(receivable,))
    receivable_stored = {
        (currency,): int(total)
        for currency, total in session.execute(
            select(Invoice.currency, func.sum(Invoice.amount_due)).group_by(Invoice.currency)
        )
    }
    for key in sorted(set(receivable_journal) | set(receivable_stored)):
        if receivable_journal.get(key, 0) != receivable_stored.get(key, 0):
            problems.append(
                f"premium receivable ({key[0]}): invoices due {receivable_stored.get(key, 0)}, "
                f"journal {receivable_journal.get(key, 0)}"
            )

    # 6. The journal's day totals (what the KPIs read) equal the sums of its lines.
    for (on, account, currency, kind), lines, total in journal.totals_differences(session):
        problems.append(
            f"journal total {on.isoformat()} {account} {currency} {kind}: {total}, lines {lines}"
        )
    return problems
