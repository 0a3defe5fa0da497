"""The year to date, simulated through the real jobs and the one posting engine.

Day by day from the first of the year to the business date (ALLOW_TIME_TRAVEL on): the
`renewals` job on the first of each month; `issue_invoices` only on the days an installment
enters the lead time; each invoice paid as its holder pays (`book.Payer`): checks keyed by
hand are received and allocated in one posting batch a day; bank transfers go into the
week's bank file, their references noisy as payers write them (`names.name_variant`,
`names.typo`: a typo, the RF reference, no reference, a short payment; now and then a payer
nobody knows), imported on Fridays and matched by the `reconcile` job. The `collections`
job, when registered, runs on Mondays (reminders, notices and lapses as of that day). An
endorsement adds a second pet mid-year; at the end a policy is cancelled (its refund owed),
and the non-payer lapsed most recently pays its arrears and is reinstated (by the
collections job; without it, lapsed and reinstated here through cancellations.service)."""

from __future__ import annotations

import io
import random
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from premium_billing.actor import Actor, acting_as
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.demo.book import Holder, pet_line
from premium_billing.demo.names import FIRST, LAST, name_variant, typo
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES, format_reference, payment_reference
from premium_billing.jobs.runner import JOBS, run_job
from premium_billing.money import format_major
from premium_billing.policies.models import Installment, Policy

ACTOR = Actor(kind="cli", name="demo")
BANK_HEADER = "date,amount,currency,payer_name,reference,bank_reference"


@dataclass
class Tally:
    job_runs: int = 0
    checks: int = 0
    bank_lines: int = 0
    bank_files: int = 0
    events: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Due:
    invoice_id: int
    number: str
    amount: int
    currency: str
    holder: Holder


def simulate(
    db: Database, settings: Settings, book: dict[int, Holder], start: date, today: date
) -> Iterator[str]:
    """Simulate `start`..`today` for the book {policyholder id: Holder}."""
    rng = random.Random(f"demo:{start}")
    tally = Tally()
    began = time.perf_counter()
    holder_of_policy = _policies(db, book)
    issue_days = _issue_days(db, settings, start, today)
    endorse_on, endorsed = _endorsement(db, book, start, today)
    payday: dict[date, list[Due]] = defaultdict(list)
    paid_count: dict[int, int] = defaultdict(int)  # invoices a holder chose to pay
    bank: list[str] = []
    day = start
    with acting_as(ACTOR):
        while day <= today:
            if day.day == 1:
                _job(db, settings, "renewals", day, tally)
                issue_days |= _issue_days(db, settings, day, today)  # the renewed terms'
            if day == endorse_on and endorsed is not None:
                _endorse(db, settings, endorsed, day, rng, tally)
                issue_days |= _issue_days(db, settings, day, today)
            if day in issue_days:
                _job(db, settings, "issue_invoices", day, tally)
                for due in _issued(db, holder_of_policy, day):
                    payer = due.holder.payer
                    paid_count[due.holder.number] += 1
                    if payer.habit == "never" or (
                        payer.habit == "stops" and paid_count[due.holder.number] > 1
                    ):
                        continue
                    with db.session() as session:
                        due_date = session.get(Invoice, due.invoice_id).due_date  # type: ignore[union-attr]
                    pay_on = max(day, due_date + timedelta(days=payer.lag))
                    if pay_on <= today:
                        payday[pay_on].append(due)
            dues = payday.pop(day, [])
            _checks(db, settings, [d for d in dues if d.holder.payer.channel == "check"], day)
            tally.checks += sum(1 for d in dues if d.holder.payer.channel == "check")
            for n, due in enumerate(d for d in dues if d.holder.payer.channel == "bank"):
                bank.append(_bank_line(rng, due, day, n))
            if bank and (day.weekday() == 4 or day == today):
                if rng.random() < 0.5:
                    bank.append(_stranger(rng, day))
                _bank_file(db, settings, bank, day, tally)
                bank = []
                _job(db, settings, "reconcile", day, tally)
            if "collections" in JOBS and day.weekday() == 0:
                _job(db, settings, "collections", day, tally)
            day += timedelta(days=1)
        yield from _cancel_with_refund(db, settings, book, today, tally)
        if "collections" in JOBS:
            yield from _reinstated_by_collections(db, settings, book, today, tally)
        else:
            yield from _lapse_and_reinstate(db, settings, book, today, tally)
    seconds = time.perf_counter() - began
    yield from tally.events
    yield (
        f"simulated {start.isoformat()} to {today.isoformat()} in {seconds:.1f} s: "
        f"{tally.job_runs} job runs, {tally.checks} checks keyed, "
        f"{tally.bank_lines} bank lines in {tally.bank_files} bank files"
    )


def _job(db: Database, settings: Settings, name: str, day: date, tally: Tally) -> None:
    run_job(db, settings, name, day, trigger="demo")
    tally.job_runs += 1


def _policies(db: Database, book: dict[int, Holder]) -> dict[int, Holder]:
    with db.session() as session:
        rows = session.execute(select(Policy.id, Policy.policyholder_id)).all()
    return {pid: book[hid] for pid, hid in rows if hid in book}


def _issue_days(db: Database, settings: Settings, start: date, today: date) -> set[date]:
    """The days an installment enters the lead time (`issue_invoices` has work)."""
    lead = timedelta(days=settings.invoice_lead_days)
    with db.session() as session:
        dues = session.scalars(
            select(Installment.due_date)
            .where(Installment.status == "scheduled", Installment.due_date <= today + lead)
            .distinct()
        ).all()
    return {max(start, due - lead) for due in dues if due - lead <= today}


def _issued(db: Database, holder_of_policy: dict[int, Holder], day: date) -> list[Due]:
    with db.session() as session:
        rows = session.execute(
            select(Invoice.id, Invoice.number, Invoice.amount_due, Invoice.currency,
                   Invoice.policy_id)
            .where(Invoice.issue_date == day, Invoice.amount_due > 0)
            .order_by(Invoice.id)
        ).all()  # fmt: skip
    return [
        Due(iid, number, amount, currency, holder_of_policy[pid])
        for iid, number, amount, currency, pid in rows
        if pid in holder_of_policy
    ]


def _checks(db: Database, settings: Settings, dues: list[Due], day: date) -> None:
    """The day's checks: received and allocated in one posting batch."""
    from premium_billing.payments.posting import Plan, Received, post, receive

    if not dues:
        return
    with db.session() as session:
        ids = receive(
            session,
            [
                Received(
                    amount=d.amount,
                    currency=d.currency,
                    method="check",
                    received_on=day,
                    external_id=f"demo-check-{d.number}",
                    payer_name=d.holder.data["name"],
                    reference=d.number,
                    policyholder_id=_holder_id(session, d.invoice_id),
                )
                for d in dues
            ],
            source="manual",
            memo="demo: checks",
        )
        plans = [
            Plan(pid, [(d.invoice_id, d.amount)], rule="manual")
            for pid, d in zip(ids, dues, strict=True)
        ]
        post(session, settings, plans, on=day, reason="manual", memo="demo: checks")
        session.commit()


def _holder_id(session: Any, invoice_id: int) -> int:
    return session.get(Invoice, invoice_id).policyholder_id  # type: ignore[no-any-return]


def _bank_line(rng: random.Random, due: Due, day: date, n: int) -> str:
    """A payer's transfer as the bank reports it: name and reference as they typed them."""
    name = due.holder.data["name"]
    payer = name_variant(rng, name, False)
    amount = due.amount
    draw = rng.random()
    lead = rng.choice(("", "", "Premium ", "Ref ", "Invoice ", "Payment for "))
    if draw < 0.55:
        text = f"{lead}{due.number}"
    elif draw < 0.70:
        text = format_reference(payment_reference(due.number))
    elif draw < 0.82:
        text = f"{lead}{typo(rng, due.number)}"
    elif draw < 0.92:
        text = rng.choice(("premium", "pet insurance", "monthly payment", ""))
    else:
        amount -= rng.randrange(1, 100)  # the bank's fee: within the write-off tolerance
        text = f"{lead}{due.number}"
    return _csv(day, amount, due.currency, payer, text, f"DEMO-{day.isoformat()}-{n + 1}")


def _stranger(rng: random.Random, day: date) -> str:
    """A transfer nobody can place: it waits in suspense with its ranked candidates."""
    payer = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
    text = rng.choice(("thanks", "gift", f"order {rng.randrange(10**6)}", ""))
    amount = rng.randrange(1500, 25000)
    return _csv(day, amount, "USD", payer, text, f"DEMO-{day.isoformat()}-X")


def _csv(day: date, amount: int, currency: str, payer: str, text: str, ref: str) -> str:
    cells = (day.isoformat(), format_major(amount, currency), currency, payer, text, ref)
    return ",".join('"' + c.replace('"', '""') + '"' for c in cells)


def _bank_file(db: Database, settings: Settings, lines: list[str], day: date, tally: Tally) -> None:
    from premium_billing.reconciliation.imports import import_statement

    body = "\n".join([BANK_HEADER, *lines]).encode()
    with db.session() as session:
        import_statement(
            session,
            settings,
            io.BytesIO(body),
            format="csv",
            filename=f"demo-bank-{day.isoformat()}.csv",
        )
    tally.bank_files += 1
    tally.bank_lines += len(lines)


def _endorsement(
    db: Database, book: dict[int, Holder], start: date, today: date
) -> tuple[date | None, int | None]:
    """The earliest monthly policy with one pet gets a second one, three months in."""
    candidates = sorted(
        (h.policy["effective_date"], h.policy["policy_number"])
        for h in book.values()
        if h.policy["billing_plan"] == "monthly" and len(h.pets) == 1
    )
    for effective, number in candidates:
        on = effective + timedelta(days=90)
        if on < today:
            with db.session() as session:
                pid = session.scalar(select(Policy.id).where(Policy.policy_number == number))
            return on, pid
    return None, None


def _endorse(
    db: Database, settings: Settings, policy_id: int, day: date, rng: random.Random, tally: Tally
) -> None:
    from premium_billing.invoicing.renewals import lines_of
    from premium_billing.policies.service import endorse, get_policy

    with db.session() as session:
        policy = get_policy(session, policy_id)
        lines = lines_of(policy.terms[-1])
        lines.append(pet_line(rng, day))
        endorse(session, policy_id, day, lines, "a second pet joins", settings)
        tally.events.append(
            f"endorsement: {policy.policy_number} adds {lines[-1]['description']} "
            f"on {day.isoformat()}"
        )


def _cancel_with_refund(
    db: Database, settings: Settings, book: dict[int, Holder], today: date, tally: Tally
) -> Iterator[str]:
    """A prompt payer's annual policy, paid in full, cancelled pro rata: a refund owed."""
    from premium_billing.cancellations.service import cancel

    with db.session() as session:
        numbers = [h.policy["policy_number"] for h in book.values() if _annual_prompt(h)]
        pid = session.scalar(
            select(Policy.id)
            .join(Invoice, Invoice.policy_id == Policy.id)
            .where(Policy.policy_number.in_(numbers), Policy.status == "active",
                   Invoice.status == "paid")
            .order_by(Policy.id)
            .limit(1)
        )  # fmt: skip
        if pid is None:
            return
        done = cancel(session, settings, pid, today - timedelta(days=7), "pro_rata", "moved abroad")
        policy = session.get(Policy, pid)
        refunds = len(done.refund_ids)
        yield (
            f"cancellation: {policy.policy_number if policy else pid} pro rata from "
            f"{(today - timedelta(days=7)).isoformat()}, {refunds} refund(s) owed (GET /refunds)"
        )


def _annual_prompt(holder: Holder) -> bool:
    return holder.policy["billing_plan"] == "annual" and holder.payer.habit == "prompt"


def _lapse_and_reinstate(
    db: Database, settings: Settings, book: dict[int, Holder], today: date, tally: Tally
) -> Iterator[str]:
    """Non-payers past their grace period: one lapses (and stays lapsed); one whose lapse is
    recent enough pays its arrears by check and is reinstated."""
    from premium_billing.cancellations.service import lapse, reinstate

    grace = timedelta(days=settings.grace_days)
    window = timedelta(days=settings.reinstatement_days)
    numbers = [
        h.policy["policy_number"] for h in book.values() if h.payer.habit in ("stops", "never")
    ]
    with db.session() as session:
        rows = session.execute(
            select(Policy.id, Policy.policy_number, Invoice.due_date)
            .join(Invoice, Invoice.policy_id == Policy.id)
            .where(Policy.policy_number.in_(numbers), Policy.status == "active",
                   Invoice.status.in_(PAYABLE_STATUSES))
            .order_by(Invoice.due_date, Policy.id)
        ).all()  # fmt: skip
    lapses: dict[int, tuple[str, date]] = {}
    for pid, number, due in rows:
        if pid not in lapses and due + grace < today:
            lapses[pid] = (number, due + grace)
    recent = next((pid for pid, (_, on) in lapses.items() if on + window >= today), None)
    stays = next((pid for pid in lapses if pid != recent), None)
    for chosen in (stays, recent):
        if chosen is None:
            continue
        number, on = lapses[chosen]
        with db.session() as session:
            lapse(session, settings, chosen, on)
        yield f"lapse: {number} for non-payment, from {on.isoformat()}"
        if chosen == recent:
            yield from _pay_arrears_and_reinstate(db, settings, chosen, number, today, reinstate)


def _reinstated_by_collections(
    db: Database, settings: Settings, book: dict[int, Holder], today: date, tally: Tally
) -> Iterator[str]:
    """The collections job lapsed the non-payers (its reminders and notices on the way):
    the one lapsed most recently pays its arrears by check, and the job reinstates it."""
    from premium_billing.policies.models import Cancellation

    _job(db, settings, "collections", today, tally)
    numbers = [
        h.policy["policy_number"] for h in book.values() if h.payer.habit in ("stops", "never")
    ]
    window = timedelta(days=settings.reinstatement_days)
    with db.session() as session:
        lapsed = session.execute(
            select(Policy.id, Policy.policy_number, Cancellation.effective_date)
            .join(Cancellation, Cancellation.policy_id == Policy.id)
            .where(Policy.policy_number.in_(numbers), Policy.status == "lapsed")
            .order_by(Cancellation.effective_date.desc())
        ).all()  # fmt: skip
    if lapsed:
        named = ", ".join(f"{number} from {on.isoformat()}" for _, number, on in lapsed[:3])
        more = f" and {len(lapsed) - 3} more" if len(lapsed) > 3 else ""
        yield f"lapses (collections job) for non-payment: {named}{more}"
    recent = next(((pid, n) for pid, n, on in lapsed if on + window >= today), None)
    if recent is None:
        return
    pid, number = recent
    dues = _arrears(db, pid, today)
    _checks(db, settings, dues, today)
    _job(db, settings, "collections", today, tally)
    with db.session() as session:
        status = session.scalar(select(Policy.status).where(Policy.id == pid))
    yield f"reinstatement (collections): {number} paid {len(dues)} invoice(s) of arrears: {status}"


def _arrears(db: Database, pid: int, today: date) -> list[Due]:
    """A lapsed policy's open invoices but the lapse's own settlement (issued today)."""
    with db.session() as session:
        return [
            Due(inv.id, inv.number, inv.amount_due, inv.currency, _NOBODY)
            for inv in session.scalars(
                select(Invoice).where(
                    Invoice.policy_id == pid,
                    Invoice.status.in_(PAYABLE_STATUSES),
                    Invoice.issue_date != today,
                )
            )
        ]


def _pay_arrears_and_reinstate(
    db: Database, settings: Settings, pid: int, number: str, today: date, reinstate: Any
) -> Iterator[str]:
    from premium_billing.policies.models import Cancellation

    dues = _arrears(db, pid, today)
    with db.session() as session:
        cancellation = session.scalar(select(Cancellation).where(Cancellation.policy_id == pid))
        effective = cancellation.effective_date if cancellation else today
    _checks(db, settings, dues, today)
    with db.session() as session:
        reinstate(session, settings, pid, max(effective, today))
    yield f"reinstatement: {number} after its arrears were paid ({len(dues)} invoice(s))"


_NOBODY = Holder(0, {"name": "Demo payer"}, {}, None)  # type: ignore[arg-type]
