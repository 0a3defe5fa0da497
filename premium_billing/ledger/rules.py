"""The double-entry rules: account codes, the balanced postings of each money movement,
and the arithmetic that checks them. Pure: standard library only.

Signs: a debit is positive, a credit negative; the legs of an entry sum to zero in each
currency. Amounts are integers in the currency's minor unit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from premium_billing.errors import DomainError

# Assets
PREMIUM_RECEIVABLE = "premium_receivable"
CASH_BANK = "cash_bank"
STRIPE_CLEARING = "stripe_clearing"
# Revenue
PREMIUM_BILLED = "premium_billed"
# Liabilities: money held for someone
UNAPPLIED_CASH = "unapplied_cash"  # suspense: the payer is not known yet
CUSTOMER_CREDIT = "customer_credit"  # a known policyholder's credit balance
REFUNDS_PAYABLE = "refunds_payable"
# Expenses
PROCESSING_FEES = "processing_fees"
WRITEOFF_EXPENSE = "writeoff_expense"

ACCOUNTS: dict[str, str] = {
    PREMIUM_RECEIVABLE: "asset",
    CASH_BANK: "asset",
    STRIPE_CLEARING: "asset",
    PREMIUM_BILLED: "revenue",
    UNAPPLIED_CASH: "liability",
    CUSTOMER_CREDIT: "liability",
    REFUNDS_PAYABLE: "liability",
    PROCESSING_FEES: "expense",
    WRITEOFF_EXPENSE: "expense",
}

# Journal entry kinds
INVOICE_ISSUED = "invoice_issued"
PAYMENT_RECEIVED = "payment_received"
PAYMENT_ALLOCATED = "payment_allocated"
PAYMENT_UNALLOCATED = "payment_unallocated"
CREDIT_APPLIED = "credit_applied"
PAYMENT_REFUNDED = "payment_refunded"
PAYMENT_REVERSED = "payment_reversed"
WRITTEN_OFF = "written_off"
WRITEOFF_REVERSED = "writeoff_reversed"
PAYER_IDENTIFIED = "payer_identified"  # suspense → the payer's credit, once a match names them
PAYER_UNIDENTIFIED = "payer_unidentified"  # that match undone
PAYMENT_MATCHED = "payment_matched"  # suspense money matched: payer identified and applied at once
INVOICE_VOIDED = "invoice_voided"  # an unpaid invoice voided: its receivable reversed
PAYOUT_SETTLED = "payout_settled"  # a Stripe payout: clearing → bank, and its fees
INVOICE_CREDITED = "invoice_credited"  # a credit note: billed premium taken off an invoice
INVOICE_CREDIT_REVERSED = "invoice_credit_reversed"  # that credit note reversed
REFUND_PAID = "refund_paid"  # a refund paid out: refunds payable → Stripe clearing or bank
REFUND_REOPENED = "refund_reopened"  # a refund Stripe paid then failed: owed again
REFUND_CANCELLED = "refund_cancelled"  # an unpaid refund taken back: the payer's money again

# Every kind an entry may have: the journal refuses any other, and `ledger check` names one.
ENTRY_KINDS = frozenset(
    {
        INVOICE_ISSUED,
        INVOICE_VOIDED,
        PAYMENT_RECEIVED,
        PAYMENT_ALLOCATED,
        PAYMENT_UNALLOCATED,
        CREDIT_APPLIED,
        PAYMENT_REFUNDED,
        PAYMENT_REVERSED,
        WRITTEN_OFF,
        WRITEOFF_REVERSED,
        PAYER_IDENTIFIED,
        PAYER_UNIDENTIFIED,
        PAYMENT_MATCHED,
        PAYOUT_SETTLED,
        INVOICE_CREDITED,
        INVOICE_CREDIT_REVERSED,
        REFUND_PAID,
        REFUND_REOPENED,
        REFUND_CANCELLED,
    }
)

# Entries whose receivable legs (tagged with an invoice) move an invoice's amount paid.
PAID_KINDS = frozenset({PAYMENT_ALLOCATED, PAYMENT_UNALLOCATED, CREDIT_APPLIED, PAYMENT_MATCHED})
WRITEOFF_KINDS = frozenset({WRITTEN_OFF, WRITEOFF_REVERSED})
# Entries whose receivable legs (tagged with an invoice) move its amount credited.
CREDIT_KINDS = frozenset({INVOICE_CREDITED, INVOICE_CREDIT_REVERSED})
# Entries whose refunds payable legs (tagged with a payment) move its amount refunded.
REFUNDED_KINDS = frozenset({PAYMENT_REFUNDED, REFUND_CANCELLED})
# Entries whose refunds payable legs pay a refund out (or take that back).
REFUND_PAYOUT_KINDS = frozenset({REFUND_PAID, REFUND_REOPENED})


class UnbalancedEntry(DomainError):
    """The legs of a journal entry do not sum to zero in some currency."""


class UnknownAccount(DomainError):
    """A posting names an account that is not in the chart of accounts."""


@dataclass(frozen=True)
class Posting:
    """One leg of an entry. `amount`: signed minor units (debit > 0, credit < 0)."""

    account: str
    currency: str
    amount: int
    invoice_id: int | None = None
    payment_id: int | None = None
    policyholder_id: int | None = None


def imbalance(postings: Iterable[Posting]) -> dict[str, int]:
    """Per currency, the sum of the legs when it is not zero (empty when balanced)."""
    sums: dict[str, int] = defaultdict(int)
    for posting in postings:
        sums[posting.currency] += posting.amount
    return {currency: total for currency, total in sorted(sums.items()) if total != 0}


def check_entry(postings: Iterable[Posting]) -> list[Posting]:
    """The legs without zero amounts, after checking accounts and balance; raises otherwise."""
    legs = [p for p in postings if p.amount != 0]
    for leg in legs:
        if leg.account not in ACCOUNTS:
            raise UnknownAccount(f"unknown account {leg.account!r}")
    off = imbalance(legs)
    if off:
        detail = ", ".join(f"{c} {a:+d}" for c, a in off.items())
        raise UnbalancedEntry(f"journal entry does not balance: {detail}")
    return legs


def holding_account(policyholder_id: int | None) -> str:
    """Where unallocated money waits: a known payer's credit, or suspense."""
    return CUSTOMER_CREDIT if policyholder_id is not None else UNAPPLIED_CASH


def cash_account(source: str, method: str) -> str:
    """The asset account money arrives in: Stripe's clearing account or the bank."""
    return STRIPE_CLEARING if source == "stripe" else CASH_BANK


class UnknownEntryKind(DomainError):
    """A journal entry of a kind the chart does not define."""


def check_kind(kind: str) -> str:
    """`kind`, if it is one of ENTRY_KINDS; else UnknownEntryKind."""
    if kind not in ENTRY_KINDS:
        raise UnknownEntryKind(f"unknown journal entry kind {kind!r}")
    return kind


def invoice_voided(
    total: int, currency: str, invoice_id: int, policyholder_id: int | None
) -> list[Posting]:
    """An unpaid invoice voided: its receivable and the premium billed reversed."""
    return check_entry(
        [
            Posting(PREMIUM_RECEIVABLE, currency, -total, invoice_id, None, policyholder_id),
            Posting(PREMIUM_BILLED, currency, total, invoice_id, None, policyholder_id),
        ]
    )


def invoice_issued(totals: Mapping[str, int]) -> list[Posting]:
    """A batch of issued invoices: per currency, receivable debit and billed credit."""
    legs: list[Posting] = []
    for currency, total in sorted(totals.items()):
        legs.append(Posting(PREMIUM_RECEIVABLE, currency, total))
        legs.append(Posting(PREMIUM_BILLED, currency, -total))
    return check_entry(legs)


def payment_received(
    amount: int,
    currency: str,
    cash: str,
    payment_id: int,
    policyholder_id: int | None,
) -> list[Posting]:
    """Money in: cash (or Stripe clearing) debit, suspense or customer credit credit."""
    return check_entry(
        [
            Posting(cash, currency, amount, payment_id=payment_id),
            Posting(
                holding_account(policyholder_id),
                currency,
                -amount,
                payment_id=payment_id,
                policyholder_id=policyholder_id,
            ),
        ]
    )


def payer_identified(
    unapplied: int, currency: str, payment_id: int, policyholder_id: int
) -> list[Posting]:
    """Suspense money whose payer became known moves to that payer's credit."""
    return check_entry(
        [
            Posting(UNAPPLIED_CASH, currency, unapplied, payment_id=payment_id),
            Posting(
                CUSTOMER_CREDIT,
                currency,
                -unapplied,
                payment_id=payment_id,
                policyholder_id=policyholder_id,
            ),
        ]
    )


def payer_unidentified(
    unapplied: int, currency: str, payment_id: int, policyholder_id: int
) -> list[Posting]:
    """An undone match: the payer's credit goes back to suspense."""
    return [
        Posting(p.account, p.currency, -p.amount, p.invoice_id, p.payment_id, p.policyholder_id)
        for p in payer_identified(unapplied, currency, payment_id, policyholder_id)
    ]


def allocated(
    amounts: Mapping[int, int],
    currency: str,
    payment_id: int,
    policyholder_id: int | None,
) -> list[Posting]:
    """Held money applied to invoices ({invoice id: amount}); negative amounts undo."""
    legs: list[Posting] = []
    for invoice_id, amount in sorted(amounts.items()):
        legs.append(
            Posting(
                holding_account(policyholder_id),
                currency,
                amount,
                payment_id=payment_id,
                policyholder_id=policyholder_id,
            )
        )
        legs.append(
            Posting(
                PREMIUM_RECEIVABLE,
                currency,
                -amount,
                invoice_id=invoice_id,
                payment_id=payment_id,
                policyholder_id=policyholder_id,
            )
        )
    return check_entry(legs)


def matched(
    unapplied: int,
    amounts: Mapping[int, int],
    currency: str,
    payment_id: int,
    policyholder_id: int,
) -> list[Posting]:
    """Suspense money (`unapplied`, payer unknown) matched to invoices of a now known payer:
    the same result as `payer_identified` then `allocated`, in half the legs. Suspense debit,
    receivable credits, and the rest (an overpayment) to the payer's credit."""
    applied = sum(amounts.values())
    legs = [Posting(UNAPPLIED_CASH, currency, unapplied, payment_id=payment_id)]
    for invoice_id, amount in sorted(amounts.items()):
        legs.append(
            Posting(
                PREMIUM_RECEIVABLE,
                currency,
                -amount,
                invoice_id=invoice_id,
                payment_id=payment_id,
                policyholder_id=policyholder_id,
            )
        )
    legs.append(
        Posting(
            CUSTOMER_CREDIT,
            currency,
            applied - unapplied,
            payment_id=payment_id,
            policyholder_id=policyholder_id,
        )
    )
    return check_entry(legs)


def _out_of_holding(
    amount: int, currency: str, counter: str, payment_id: int, policyholder_id: int | None
) -> list[Posting]:
    """Held money (suspense or the payer's credit) moves out to `counter`."""
    return check_entry(
        [
            Posting(
                holding_account(policyholder_id),
                currency,
                amount,
                payment_id=payment_id,
                policyholder_id=policyholder_id,
            ),
            Posting(counter, currency, -amount, payment_id=payment_id),
        ]
    )


def refunded(
    amount: int, currency: str, payment_id: int, policyholder_id: int | None
) -> list[Posting]:
    """Held money owed back to the payer (paid out later by Stripe or the bank)."""
    return _out_of_holding(amount, currency, REFUNDS_PAYABLE, payment_id, policyholder_id)


def refund_cancelled(
    amount: int, currency: str, payment_id: int, policyholder_id: int | None
) -> list[Posting]:
    """An unpaid refund taken back: refunds payable → the payer's credit (or suspense)."""
    return refunded(-amount, currency, payment_id, policyholder_id)


def refund_paid(
    amount: int, currency: str, cash: str, payment_id: int, policyholder_id: int | None
) -> list[Posting]:
    """A refund paid out: refunds payable debit, the cash (or Stripe clearing) account it
    left credit. A negative amount: a refund paid out then failed, owed again."""
    return check_entry(
        [
            Posting(
                REFUNDS_PAYABLE, currency, amount,
                payment_id=payment_id, policyholder_id=policyholder_id,
            ),
            Posting(cash, currency, -amount, payment_id=payment_id),
        ]
    )  # fmt: skip


def invoice_credited(
    amount: int,
    currency: str,
    invoice_id: int,
    policyholder_id: int | None,
    payment_id: int | None = None,
) -> list[Posting]:
    """A credit note: premium billed but not earned (or cut) is taken off the invoice —
    premium billed debit, receivable credit. A negative amount: the credit reversed."""
    return check_entry(
        [
            Posting(PREMIUM_BILLED, currency, amount, invoice_id=invoice_id),
            Posting(
                PREMIUM_RECEIVABLE, currency, -amount,
                invoice_id=invoice_id, payment_id=payment_id, policyholder_id=policyholder_id,
            ),
        ]
    )  # fmt: skip


def reversed_payment(
    amount: int, currency: str, cash: str, payment_id: int, policyholder_id: int | None
) -> list[Posting]:
    """A chargeback or bank return: the held money leaves the cash account again."""
    return _out_of_holding(amount, currency, cash, payment_id, policyholder_id)


def written_off(
    amount: int, currency: str, invoice_id: int, policyholder_id: int | None
) -> list[Posting]:
    """An invoice's remainder written off (negative amount: a write-off reversed)."""
    return check_entry(
        [
            Posting(WRITEOFF_EXPENSE, currency, amount, invoice_id=invoice_id),
            Posting(
                PREMIUM_RECEIVABLE,
                currency,
                -amount,
                invoice_id=invoice_id,
                policyholder_id=policyholder_id,
            ),
        ]
    )


@dataclass(frozen=True)
class TrialBalanceRow:
    account: str
    debit: int
    credit: int

    @property
    def balance(self) -> int:
        return self.debit - self.credit


def trial_balance(legs: Iterable[tuple[str, str, int]]) -> dict[str, list[TrialBalanceRow]]:
    """(account, currency, signed amount) legs → per currency, per account debits/credits."""
    debits: dict[tuple[str, str], int] = defaultdict(int)
    credits: dict[tuple[str, str], int] = defaultdict(int)
    for account, currency, amount in legs:
        if amount > 0:
            debits[(currency, account)] += amount
        else:
            credits[(currency, account)] -= amount
    out: dict[str, list[TrialBalanceRow]] = defaultdict(list)
    for currency, account in sorted(set(debits) | set(credits)):
        out[currency].append(
            TrialBalanceRow(account, debits[(currency, account)], credits[(currency, account)])
        )
    return dict(out)
