"""Seeded generator of noisy bank lines with their true answers, for the matching benchmark.

`generate(n_lines, n_invoices, seed)` returns (policyholders, invoices, payer_links, lines),
each line a `Line(payment, kind, truth)`. The open invoices are one snapshot: every line is
matched against it independently (the benchmark does not post, so nothing closes).

`no_payer` (default 0: none) is the share of the lines of the `NO_PAYER_KINDS` that carry no
payer at all (no name, no account, none in the text), counted as kind "<kind>_no_payer". It
draws from its own random stream: every other line, and every line at 0, is the same.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from premium_billing.demo.names import FIRST, LAST, SUFFIX, name_variant, typo
from premium_billing.invoicing.rules import format_reference, payment_reference
from premium_billing.reconciliation.matching import (
    OpenInvoice,
    PayerLink,
    PaymentFacts,
    Policyholder,
)

TOWN = [
    "Oak",
    "River",
    "Maple",
    "Stone",
    "Bright",
    "Green",
    "Silver",
    "Golden",
    "North",
    "South",
    "East",
    "West",
    "Harbor",
    "Valley",
    "Hill",
    "Lake",
    "Cedar",
    "Pine",
    "Willow",
    "Meadow",
    "Fox",
    "Bear",
    "Eagle",
    "Falcon",
    "Summit",
    "Bridge",
    "Crown",
    "Royal",
    "Union",
    "Star",
]
TRADE = [
    "Farms",
    "Kennels",
    "Stables",
    "Veterinary",
    "Logistics",
    "Bakery",
    "Builders",
    "Motors",
    "Dairy",
    "Equestrian",
    "Pets",
    "Breeders",
    "Grooming",
    "Holdings",
    "Trading",
    "Services",
    "Partners",
    "Foods",
    "Transport",
    "Landscaping",
]
CURRENCIES = (("USD", 60), ("EUR", 20), ("GBP", 15), ("CAD", 5))
FOREIGN = ("CHF", "JPY", "AUD", "SEK")  # no open invoice is ever in these
KIND_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("clean_reference", 56),
    ("stripe", 5),
    ("typo_reference", 6),
    ("name_only", 8),
    ("linked_account", 4),
    ("several_invoices", 4),
    ("partial", 3),
    ("overpayment", 2),
    ("short_pay", 3),
    ("duplicate", 2),
    ("unknown_payer", 3),
    ("other_currency", 2),
    ("return", 2),
)


# A bank line without the payer's name or account: a typo naming another real invoice is then
# backed by nothing but the amount; a partial, over- or short payment by nothing but the text.
NO_PAYER_KINDS = ("typo_reference", "partial", "overpayment", "short_pay")


@dataclass(frozen=True, slots=True)
class Truth:
    outcome: str  # matched | partial | suspense | duplicate | return
    policyholder_id: str | None = None
    allocations: tuple[tuple[str, int], ...] = ()
    credit: int = 0
    write_offs: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True, slots=True)
class Line:
    payment: PaymentFacts
    kind: str
    truth: Truth


def _weighted(rng: random.Random, pairs: Sequence[tuple[str, int]]) -> str:
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def _zipf_pick(rng: random.Random, words: Sequence[str], shift: int) -> str:
    # Common names are more common: weight 1 / (rank + shift). With these lists the most
    # common surname is ~1.4% of people and the most common first name ~3%, as in the US.
    weights = _ZIPF.get((len(words), shift))
    if weights is None:
        acc, total = [], 0.0
        for r in range(len(words)):
            total += 1.0 / (r + shift)
            acc.append(total)
        weights = _ZIPF[(len(words), shift)] = acc
    return rng.choices(words, cum_weights=weights)[0]


_ZIPF: dict[tuple[int, int], list[float]] = {}


def _person(rng: random.Random) -> tuple[str, str, str]:
    return _zipf_pick(rng, FIRST, 15), _zipf_pick(rng, LAST, 30), "person"


def generate(
    n_lines: int,
    n_invoices: int,
    seed: int = 1,
    kind_weights: Sequence[tuple[str, int]] = KIND_WEIGHTS,
    no_payer: float = 0.0,
) -> tuple[list[Policyholder], list[OpenInvoice], list[PayerLink], list[Line]]:
    rng = random.Random(seed)
    unnamed = random.Random(f"{seed}:no payer")  # its own stream: the others stay the same
    # Policyholders with one to three policies of one to four open invoices each.
    holders: list[Policyholder] = []
    kinds: dict[str, bool] = {}
    plan: list[tuple[str, str, int, str]] = []  # (holder, policy, premium, currency) per invoice
    policy_seq = 0
    while len(plan) < n_invoices:
        hid = f"ph_{len(holders) + 1:07d}"
        if rng.random() < 0.12:
            name = f"{rng.choice(TOWN)} {rng.choice(TRADE)} {rng.choice(SUFFIX)}"
            is_company = True
        else:
            first, last, _ = _person(rng)
            name = f"{first} {last}"
            is_company = False
        holders.append(Policyholder(hid, name))
        kinds[hid] = is_company
        currency = _weighted(rng, CURRENCIES)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            policy_seq += 1
            prefix = "PET" if rng.random() < 0.8 else "GEN"
            policy = f"{prefix}-{policy_seq:06d}"
            if rng.random() < 0.4:
                premium = rng.choice((1999, 2499, 2999, 3499, 3999, 4500, 4999, 5999, 7500))
            else:
                premium = rng.randrange(1500, 25000)
            for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
                plan.append((hid, policy, premium, currency))
    plan = plan[:n_invoices]
    order = list(range(len(plan)))
    rng.shuffle(order)  # invoice numbers interleave across policyholders
    invoices: list[OpenInvoice] = []
    month_of: dict[str, int] = {}
    for seq, k in enumerate(order, start=1):
        hid, policy, premium, currency = plan[k]
        month = month_of.get(policy, rng.randrange(1, 9))
        month_of[policy] = month + 1
        number = f"INV-2026-{seq:06d}"
        invoices.append(
            OpenInvoice(
                id=f"inv_{seq:07d}",
                number=number,
                payment_reference=payment_reference(number),
                policy_number=policy,
                policyholder_id=hid,
                currency=currency,
                amount_due=premium,
                due_date=date(2026, month, rng.choice((1, 15, 28))),
                total=premium,  # nothing paid yet
            )
        )
    by_holder: dict[str, list[OpenInvoice]] = {}
    for inv in invoices:
        by_holder.setdefault(inv.policyholder_id, []).append(inv)
    for v in by_holder.values():
        v.sort(key=lambda i: (i.due_date, i.number, i.id))
    names = {h.id: h.name for h in holders}
    accounts: dict[str, str] = {}
    links: list[PayerLink] = []
    for h in holders:
        if h.id in by_holder and rng.random() < 0.3:
            acct = f"GB{rng.randrange(10, 99)}BANK{rng.randrange(10**13, 10**14)}"
            accounts[h.id] = acct
            links.append(PayerLink(acct, h.id))

    lines: list[Line] = []
    deck: list[int] = []
    claimed: set[str] = set()
    day0 = date(2026, 3, 1)
    for n in range(n_lines):
        kind = _weighted(rng, kind_weights)
        recent = []
        if kind == "duplicate":
            recent = [x for x in lines[-50:] if x.kind not in ("duplicate", "return")]
            if not recent:
                kind = "clean_reference"
        pid = f"pay_{n + 1:07d}"
        received = day0 + timedelta(days=n * 300 // max(n_lines, 1))
        if kind == "duplicate":
            src = rng.choice(recent)
            if src.kind.endswith("_no_payer"):
                # A line without a payer cannot be told from new money (DESIGN: same payer,
                # amount and reference): the next named line is repeated instead, found
                # without a draw so that the other lines stay the same.
                at = recent.index(src)
                src = next(
                    (x for x in recent[at:] + recent[:at] if not x.kind.endswith("_no_payer")),
                    src,
                )
            p = src.payment
            pay = PaymentFacts(pid, p.amount, p.currency, p.received_on + timedelta(days=1),
                               p.payer_name, p.payer_account, p.reference, p.stripe_invoice_id,
                               False)  # fmt: skip
            truth = Truth("duplicate")
            lines.append(Line(pay, kind, truth))
            continue
        # Each invoice is settled by one line at most (per round, when lines outnumber
        # invoices): a line never "truly" pays an invoice an earlier line already paid.
        while True:
            if not deck:
                deck = list(range(len(invoices)))
                rng.shuffle(deck)
            if len(claimed) >= len(invoices):
                claimed.clear()
            inv = invoices[deck.pop()]
            if inv.id not in claimed:
                break
        hid = inv.policyholder_id
        company = kinds[hid]
        payer: str | None = name_variant(rng, names[hid], company)
        account = accounts.get(hid) if rng.random() < 0.5 else None
        account = account or f"XX{rng.randrange(10**15, 10**16)}"
        ref_text = rng.choice(
            (
                inv.number,
                inv.number,
                inv.number,
                format_reference(inv.payment_reference),
                inv.payment_reference,
                inv.number.replace("-", " "),
            )
        )
        lead = rng.choice(("", "", "Premium ", "Ref ", "Invoice ", "Payment for "))
        text = f"{lead}{ref_text}"
        if rng.random() < 0.5:
            text += f" {payer}"
        amount = inv.amount_due
        truth = Truth("matched", hid, ((inv.id, amount),))
        stripe_id = None
        currency = inv.currency
        is_return = False
        if kind == "stripe":
            stripe_id, text, payer, account = inv.id, f"Stripe payout {pid}", None, None
        elif kind == "typo_reference":
            text = f"{lead}{typo(rng, ref_text)}"
            if rng.random() < 0.7:
                text += f" {payer}"
        elif kind in ("name_only", "linked_account"):
            if kind == "linked_account" and hid in accounts:
                account = accounts[hid]
                text = rng.choice(("", "standing order", "premium"))
            else:
                kind = "name_only"
                text = rng.choice(("", "premium", "pet insurance", "monthly payment", "INSURANCE"))
            # Without a reference, equal installments are told apart by age only: the payer
            # pays the oldest open one of that amount.
            oldest = next(
                i
                for i in by_holder[hid]
                if i.currency == currency and i.amount_due == amount
                and (i.id not in claimed or i is inv)
            )  # fmt: skip
            truth = Truth("matched", hid, ((oldest.id, amount),))
        elif kind == "several_invoices":
            own = [
                i for i in by_holder[hid]
                if i.currency == currency and (i.id not in claimed or i is inv)
            ]  # fmt: skip
            if len(own) < 2:
                kind = "clean_reference"
            else:
                k = min(len(own), rng.choice((2, 2, 3)))
                chosen = own[:k]
                amount = sum(i.amount_due for i in chosen)
                truth = Truth("matched", hid, tuple((i.id, i.amount_due) for i in chosen))
                if rng.random() < 0.6:
                    text = " ".join(i.number for i in chosen) + f" {payer}"
                else:
                    text = rng.choice(("", "premiums", "arrears"))
        elif kind == "partial":
            amount = max(1, amount * rng.randrange(20, 90) // 100)
            truth = Truth("partial", hid, ((inv.id, amount),))
        elif kind == "overpayment":
            extra = rng.randrange(100, 5000)
            amount = inv.amount_due + extra
            truth = Truth("matched", hid, ((inv.id, inv.amount_due),), credit=extra)
            text = f"{lead}{ref_text} {payer}"
        elif kind == "short_pay":
            short = rng.randrange(1, 101)
            amount = inv.amount_due - short
            truth = Truth("matched", hid, ((inv.id, amount),), write_offs=((inv.id, short),))
        elif kind == "unknown_payer":
            first, last, _ = _person(rng)
            payer = name_variant(rng, f"{first} {last}", False)
            account = f"XX{rng.randrange(10**15, 10**16)}"
            amount = rng.randrange(1500, 25000)
            text = rng.choice(("", "thanks", "gift", f"order {rng.randrange(10**6)}",
                               f"INV-2025-{rng.randrange(10**6):06d}"))  # fmt: skip
            truth = Truth("suspense")
        elif kind == "other_currency":
            # Half in a currency no invoice has, half in another invoiced currency.
            others = [c for c, _ in CURRENCIES if c != inv.currency]
            currency = rng.choice(FOREIGN) if rng.random() < 0.5 else rng.choice(others)
            truth = Truth("suspense")
        elif kind == "return":
            is_return = True
            truth = Truth("return")
        if no_payer and kind in NO_PAYER_KINDS and unnamed.random() < no_payer:
            if payer and text.endswith(f" {payer}"):
                text = text[: -len(payer) - 1]
            kind, payer, account = f"{kind}_no_payer", None, None
        pay = PaymentFacts(pid, amount, currency, received, payer, account, text, stripe_id,
                           is_return)  # fmt: skip
        claimed.update(invoice_id for invoice_id, _ in truth.allocations)
        lines.append(Line(pay, kind, truth))
    return holders, invoices, links, lines
