"""Finance reports from the journal."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from premium_billing.ledger import rules as ledger
from premium_billing.ledger.models import JournalEntry, JournalLine


def trial_balance(session: Session, as_of: date) -> dict[str, Any]:
    """Per currency and account, debits and credits of the entries up to `as_of` (included);
    in each currency total debits equal total credits."""
    debit = func.sum(case((JournalLine.amount > 0, JournalLine.amount), else_=0))
    credit = func.sum(case((JournalLine.amount < 0, -JournalLine.amount), else_=0))
    sums = session.execute(
        select(JournalLine.account, JournalLine.currency, debit, credit)
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .where(JournalEntry.occurred_on <= as_of)
        .group_by(JournalLine.account, JournalLine.currency)
    ).all()
    signed = [
        leg
        for account, currency, debits, credits in sums
        for leg in ((account, currency, int(debits)), (account, currency, -int(credits)))
        if leg[2] != 0
    ]
    currencies = []
    for currency, rows in ledger.trial_balance(signed).items():
        accounts = [
            {
                "account": row.account,
                "type": ledger.ACCOUNTS.get(row.account, "unknown"),
                "debit": row.debit,
                "credit": row.credit,
                "balance": row.balance,
            }
            for row in rows
        ]
        total_debit = sum(row.debit for row in rows)
        total_credit = sum(row.credit for row in rows)
        currencies.append(
            {
                "currency": currency,
                "accounts": accounts,
                "total_debit": total_debit,
                "total_credit": total_credit,
                "balanced": total_debit == total_credit,
            }
        )
    return {"as_of": as_of, "currencies": currencies}


def summary_lines(session: Session, as_of: date) -> list[str]:
    """The trial balance as text lines (demo, CLI)."""
    from premium_billing.money import format_major

    lines = [f"trial balance as of {as_of.isoformat()}:"]
    for block in trial_balance(session, as_of)["currencies"]:
        currency = block["currency"]
        for row in block["accounts"]:
            debit = format_major(row["debit"], currency)
            credit = format_major(row["credit"], currency)
            account = row["account"]
            lines.append(f"  {currency} {account:<20} debit {debit:>12}  credit {credit:>12}")
        state = "balanced" if block["balanced"] else "NOT BALANCED"
        lines.append(
            f"  {currency} total debit {format_major(block['total_debit'], currency)} = credit "
            f"{format_major(block['total_credit'], currency)} ({state})"
        )
    return lines
