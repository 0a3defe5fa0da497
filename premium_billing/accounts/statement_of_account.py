"""Statement of account: per currency, the opening balance, every charge and payment of the
period with the running balance, and the closing balance. Balance > 0: owed by the
policyholder; < 0: in their credit.

An invoice shows what it billed when issued; a credit note (a cancellation's unearned
premium, a premium cut, or their reversal) takes premium off it on its own date; a refund
owed to the policyholder shows when it was owed, with how and whether it was paid (a
refund a reinstatement took back shows again, reversed, on that date)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from premium_billing.invoicing.models import Invoice
from premium_billing.payments.models import InvoiceCredit, Payment, Refund, WriteOff
from premium_billing.policies.models import Policy
from premium_billing.policies.policyholders import get_policyholder


@dataclass(frozen=True)
class Movement:
    date: date
    kind: str  # invoice | credit | payment | refund | reversal | write_off
    reference: str
    description: str
    amount: int
    order: int  # charges before money on the same day


@dataclass
class StatementAccount:
    currency: str
    opening_balance: int = 0
    lines: list[dict[str, Any]] = field(default_factory=list)
    closing_balance: int = 0


def _movements(session: Session, policyholder_id: int) -> list[tuple[str, Movement]]:
    out: list[tuple[str, Movement]] = []
    invoices = session.execute(
        select(
            Invoice.currency,
            Invoice.issue_date,
            Invoice.number,
            Invoice.total + Invoice.amount_credited,
            Invoice.id,
            Policy.policy_number,
        )
        .join(Policy, Policy.id == Invoice.policy_id)
        .where(Invoice.policyholder_id == policyholder_id, Invoice.status != "void")
    ).all()
    for currency, issued, number, total, _invoice_id, policy_number in invoices:
        out.append(
            (
                currency,
                Movement(
                    issued, "invoice", number, f"Invoice {number}, policy {policy_number}", total, 0
                ),
            )
        )
    payments = session.execute(
        select(
            Payment.id,
            Payment.currency,
            Payment.received_on,
            Payment.amount,
            Payment.method,
            Payment.reference,
            Payment.amount_reversed,
            Payment.reversed_on,
        ).where(Payment.policyholder_id == policyholder_id)
    ).all()
    for (
        pid,
        currency,
        received,
        amount,
        method,
        reference,
        reversed_amount,
        reversed_on,
    ) in payments:
        label = f"Payment received ({method.replace('_', ' ')})"
        out.append(
            (
                currency,
                Movement(
                    received,
                    "payment",
                    f"pay_{pid}",
                    label + (f": {reference}" if reference else ""),
                    -amount,
                    1,
                ),
            )
        )
        if reversed_amount and reversed_on:
            out.append(
                (
                    currency,
                    Movement(
                        reversed_on,
                        "reversal",
                        f"pay_{pid}",
                        "Payment reversed",
                        reversed_amount,
                        2,
                    ),
                )
            )
    credits = session.execute(
        select(
            Invoice.currency,
            InvoiceCredit.credited_on,
            Invoice.number,
            InvoiceCredit.amount,
            InvoiceCredit.kind,
        )
        .join(Invoice, Invoice.id == InvoiceCredit.invoice_id)
        .where(Invoice.policyholder_id == policyholder_id, Invoice.status != "void")
    ).all()
    for currency, credited_on, number, amount, kind in credits:
        what = {
            "cancellation": "unearned premium (cancellation)",
            "lapse": "unearned premium (lapse)",
            "endorsement": "premium cut (endorsement)",
        }.get(kind)
        description = (
            f"Credit on {number}: {what}" if amount > 0 else f"Credit on {number} reversed"
        )
        out.append((currency, Movement(credited_on, "credit", number, description, -amount, 1)))
    refunds = session.execute(
        select(
            Refund.id,
            Refund.currency,
            Refund.created_at,
            Refund.amount,
            Refund.status,
            Refund.channel,
            Refund.cancelled_on,
        )
        .join(Payment, Payment.id == Refund.payment_id)
        .where(Payment.policyholder_id == policyholder_id)
    ).all()
    how = {"stripe": "to your card", "check": "by check", "transfer": "by transfer"}
    for rid, currency, created, amount, status, channel, cancelled_on in refunds:
        description = {
            "succeeded": f"Refund paid to you ({how[channel]})",
            "failed": "Refund due to you (the card payment could not be refunded)",
        }.get(status, f"Refund due to you ({how[channel]})")
        out.append(
            (currency, Movement(created.date(), "refund", f"re_{rid}", description, amount, 2))
        )
        if status == "cancelled" and cancelled_on is not None:
            out.append(
                (
                    currency,
                    Movement(cancelled_on, "refund", f"re_{rid}", "Refund withdrawn", -amount, 2),
                )
            )
    write_offs = session.execute(
        select(Invoice.currency, WriteOff.created_at, Invoice.number, WriteOff.amount)
        .join(Invoice, Invoice.id == WriteOff.invoice_id)
        .where(Invoice.policyholder_id == policyholder_id)
    ).all()
    for currency, created, number, amount in write_offs:
        out.append(
            (
                currency,
                Movement(
                    created.date(),
                    "write_off",
                    number,
                    f"Balance of {number} written off",
                    -amount,
                    3,
                ),
            )
        )
    return out


def statement(session: Session, policyholder_id: int, start: date, end: date) -> dict[str, Any]:
    holder = get_policyholder(session, policyholder_id)
    accounts: dict[str, StatementAccount] = {}
    by_currency: dict[str, list[Movement]] = defaultdict(list)
    for currency, movement in _movements(session, policyholder_id):
        by_currency[currency].append(movement)
    for currency in sorted(by_currency):
        account = accounts.setdefault(currency, StatementAccount(currency))
        movements = sorted(by_currency[currency], key=lambda m: (m.date, m.order, m.reference))
        account.opening_balance = sum(m.amount for m in movements if m.date < start)
        balance = account.opening_balance
        for m in movements:
            if start <= m.date <= end:
                balance += m.amount
                account.lines.append(
                    {
                        "date": m.date,
                        "kind": m.kind,
                        "reference": m.reference,
                        "description": m.description,
                        "amount": m.amount,
                        "balance": balance,
                    }
                )
        account.closing_balance = balance
    return {
        "policyholder_id": holder.id,
        "name": holder.name,
        "from_": start,
        "to": end,
        "accounts": [vars(a) for a in accounts.values()],
    }
