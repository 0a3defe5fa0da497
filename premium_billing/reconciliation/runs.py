"""Reconciliation runs: match the unapplied payments to open invoices and post the matches.

A run loads the suspense payments (unapplied, payer unknown, not held for a person), the open
invoices, their policyholders and the learned payer links; builds the pure CandidateIndex
once; decides every payment with `matching.match_payment`; puts the matches in allocation
order (`InOrder`); and posts them set-based through the posting engine
(`payments.posting.post`; rule, score and evidence recorded on the payment), writing off a
short payment within tolerance and leaving an overpayment as the payer's credit. What is
not posted stays in suspense with its ranked candidates, each with its reason
(`suspense_items`; `matching.rank_candidates`).

A match undone by hand (DELETE /payments/{id}/allocations, `reconciliation.manual`) puts the
payment back in the queue, `held`: runs no longer auto-post it, they only rank its
candidates again. A manual match (POST /payments/{id}/allocations) teaches the payer link
(normalised bank account and name → policyholder).
"""

from __future__ import annotations

import bisect
import gc
import logging
import multiprocessing
import multiprocessing.util
import threading
import time
from array import array
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, select, text, update
from sqlalchemy.orm import Session

from premium_billing.actor import Actor, current_actor, set_actor
from premium_billing.config import Settings
from premium_billing.db.bulk import any_of, cached_plans, custom_plans
from premium_billing.db.engine import make_engine
from premium_billing.db.hooks import HANDLERS
from premium_billing.db.types import utcnow
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import PAYABLE_STATUSES, is_payable, payment_reference
from premium_billing.payments.allocation_order import named_evidence, same_allocations
from premium_billing.payments.models import Payment
from premium_billing.payments.posting import Plan, post
from premium_billing.payments.rules import (
    Installment,
    Tolerance,
    allocation_order,
    tolerance_write_offs,
)
from premium_billing.policies.models import Policy, Policyholder
from premium_billing.reconciliation import matching, metrics
from premium_billing.reconciliation.matching import (
    Candidate,
    CandidateIndex,
    MatchDecision,
    MatchSettings,
    OpenInvoice,
    PaymentFacts,
    match_payment,
    name_tokens,
    rank_candidates,
)
from premium_billing.reconciliation.matching.index import gc_paused
from premium_billing.reconciliation.models import (
    BankLine,
    PayerLink,
    ReconciliationRun,
    SuspenseItem,
)
from premium_billing.stripe_billing.models import StripePaymentState
from premium_billing.stripe_billing.rules import reference_of
from premium_billing.threads import read_ahead

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
SUSPENSE_BATCH = 2000
POST_BATCH = 2000  # matches posted per transaction, set-based
# Matches that name their invoice post first; a match by payer or policy (which picks one of
# several like invoices) after them: when both want one invoice, the one naming it gets it,
# and the other is decided again among the invoices still open (the payer's next one).
NAMED = frozenset({"stripe_metadata", "reference", "fuzzy_reference"})
WRITERS = 3  # writer threads (connections) posting batches at once, on PostgreSQL
WRITES_IN_FLIGHT = 3  # batches decided and waiting for a writer


def match_settings(settings: Settings) -> MatchSettings:
    return MatchSettings(
        auto_threshold=settings.reconcile_auto_threshold,
        tolerance_abs=settings.writeoff_tolerance_abs,
        tolerance_pct=settings.writeoff_tolerance_pct,
    )


@dataclass
class RunStats:
    examined: int = 0
    matched: int = 0
    partially_matched: int = 0
    suspense: int = 0
    duplicates: int = 0
    returns: int = 0
    written_off: int = 0
    not_posted: int = 0
    held: int = 0  # payments held for a person: their candidates ranked again, not decided
    rules: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "examined": self.examined,
            "matched": self.matched,
            "partially_matched": self.partially_matched,
            "suspense": self.suspense,
            "duplicates": self.duplicates,
            "returns": self.returns,
            "written_off": self.written_off,
            "not_posted": self.not_posted,
            "held": self.held,
            "rules": dict(sorted(self.rules.items())),
        }


# ----------------------------------------------------------------------------- loading


STREAM = 10_000  # rows fetched at a time (server-side cursor): no whole result in memory


def _streamed(session: Session, stmt: Any) -> Iterator[Any]:
    """The rows through a server-side cursor. PostgreSQL plans a cursor for its first 10%
    of rows by default (fast-start plans: a nested loop over 100k invoices took minutes);
    every row is read here, so it is planned as the whole query it is."""
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        session.execute(text("SET LOCAL cursor_tuple_fraction = 1.0"))
    # Plain rows of columns, read on the session's connection (no ORM loading per row).
    result = session.connection().execute(stmt, execution_options={"yield_per": STREAM})
    if not postgres:
        return iter(result)
    # The next chunk fetched while this one is turned into objects: the server would else
    # sit idle while the snapshot's millions of objects are made.
    chunks = read_ahead(result.partitions(), depth=2, name="reconcile-read-ahead")
    return (row for chunk in chunks for row in chunk)


class _Shared:
    """One object per distinct value: a million rows name a few currencies and dates, and
    a policyholder many times (the snapshot of a 1M-payment run stays within its memory)."""

    def __init__(self) -> None:
        self.values: dict[Any, Any] = {}

    def __call__(self, value: Any) -> Any:
        return self.values.setdefault(value, value)


def _facts_of(amount: Any) -> Any:
    """What the matcher knows of a payment, `amount` being the column to match on: with the
    bank line that brought it (payer account, returned item) and the Stripe metadata of a
    Stripe payment (the invoice it was for)."""
    columns = (Payment.id, amount, Payment.currency, Payment.received_on, Payment.payer_name,
               Payment.reference, BankLine.payer_account, BankLine.is_return,
               StripePaymentState.stripe_metadata)  # fmt: skip
    line = (BankLine.payment_id == Payment.id) & (BankLine.kind == "payment")
    stripe = StripePaymentState.payment_id == Payment.id
    return select(*columns).outerjoin(BankLine, line).outerjoin(StripePaymentState, stripe)


def _facts(row: Any, shared: _Shared) -> PaymentFacts:
    return PaymentFacts(
        str(row[0]), row[1], shared(row[2]), shared(row[3]), row[4], row[6], row[5] or "",
        stripe_invoice_id=reference_of(row[8]) if row[8] else None,
        is_return=bool(row[7]),
    )  # fmt: skip


def _suspense_payments(
    session: Session, shared: _Shared, *, held: bool = False
) -> list[PaymentFacts]:
    """The payments in suspense a run decides (`held` False), or those held for a person
    (`held` True: a run only ranks their candidates again)."""
    held_ids = select(SuspenseItem.payment_id).where(SuspenseItem.held.is_(True))
    if held and session.execute(held_ids.limit(1)).first() is None:
        return []  # none held (the common case): the payments are not read for nothing
    stmt = (
        _facts_of(Payment.amount_unapplied)
        .where(
            Payment.status == "unapplied",
            Payment.policyholder_id.is_(None),
            Payment.amount_unapplied > 0,
            Payment.id.in_(held_ids) if held else Payment.id.not_in(held_ids),
        )
        .order_by(Payment.id)
    )
    return [_facts(r, shared) for r in _streamed(session, stmt)]


def _open_invoices(session: Session, shared: _Shared) -> list[OpenInvoice]:
    stmt = (
        select(
            Invoice.id,
            Invoice.number,
            Policy.policy_number,
            Invoice.policyholder_id,
            Invoice.currency,
            Invoice.amount_due,
            Invoice.due_date,
            Invoice.total,
        )
        .join(Policy, Policy.id == Invoice.policy_id)
        .where(Invoice.status.in_(PAYABLE_STATUSES), Invoice.amount_due > 0)
    )
    return [
        OpenInvoice(
            str(r[0]), r[1], payment_reference(r[1]), shared(r[2]), shared(str(r[3])),
            shared(r[4]), r[5], shared(r[6]), r[7],
        )
        for r in _streamed(session, stmt)
    ]  # fmt: skip


def _policyholders(session: Session, shared: _Shared) -> list[matching.Policyholder]:
    holders = select(Invoice.policyholder_id).where(
        Invoice.status.in_(PAYABLE_STATUSES), Invoice.amount_due > 0
    )
    stmt = select(Policyholder.id, Policyholder.name).where(Policyholder.id.in_(holders))
    return [matching.Policyholder(shared(str(i)), name) for i, name in _streamed(session, stmt)]


def _links(session: Session, shared: _Shared) -> list[matching.PayerLink]:
    stmt = select(PayerLink.key, PayerLink.policyholder_id)
    return [matching.PayerLink(key, shared(str(h))) for key, h in _streamed(session, stmt)]


class _RecentPayments:
    """Earlier payments of the same currency and amount (the duplicate guard's window).

    The window's payments are mostly the suspense payments themselves: those are shared,
    not loaded twice; only the others (matched or held) are read in full. Per (currency,
    amount): the payment ids in order (an array) and their facts."""

    def __init__(
        self, session: Session, payments: list[PaymentFacts], days: int, shared: _Shared
    ) -> None:
        self.by_key: dict[tuple[str, int], tuple[array[int], list[PaymentFacts]]] = {}
        if not payments:
            return
        start = min(p.received_on for p in payments) - timedelta(days=days)
        end = max(p.received_on for p in payments)
        known = {int(p.id): p for p in payments}
        window = (Payment.received_on.between(start, end), Payment.status != "reversed")
        others: list[int] = []
        rows = select(Payment.id, Payment.amount).where(*window)
        for pid, amount in _streamed(session, rows.order_by(Payment.id)):
            facts = known.get(pid)
            if facts is not None and facts.amount == amount:
                self._add(pid, facts)
            else:  # not in suspense, or partly applied since: read it in full
                others.append(pid)
        del known
        unsorted: set[tuple[str, int]] = set()
        for chunk in range(0, len(others), STREAM):
            ids = others[chunk : chunk + STREAM]
            stmt = _facts_of(Payment.amount).where(any_of(session, Payment.id, ids))
            for r in session.execute(stmt):
                unsorted.add(self._add(int(r[0]), _facts(r, shared)))
        for key in unsorted:
            ids_of, facts_of = self.by_key[key]
            pairs = sorted(zip(ids_of, facts_of, strict=True), key=lambda pair: pair[0])
            self.by_key[key] = (array("q", [i for i, _ in pairs]), [f for _, f in pairs])

    def _add(self, pid: int, facts: PaymentFacts) -> tuple[str, int]:
        key = (facts.currency, facts.amount)
        bucket = self.by_key.get(key)
        if bucket is None:
            bucket = self.by_key[key] = (array("q"), [])
        bucket[0].append(pid)
        bucket[1].append(facts)
        return key

    def before(self, payment: PaymentFacts) -> list[PaymentFacts]:
        bucket = self.by_key.get((payment.currency, payment.amount))
        if not bucket:
            return []
        ids, facts = bucket
        end = bisect.bisect_left(ids, int(payment.id))
        return facts[max(0, end - 8) : end]


# ----------------------------------------------------------------------------- the order


class InOrder:
    """The allocation order of a run's matches (ALLOCATION_ORDER, `payments.rules.
    allocation_order`): a match naming a later installment of a policy settles its oldest
    open ones first, its evidence keeping the invoices it named (`named_invoices`).

    Decided in the matching thread, in the order the matches are posted, against the run's
    snapshot of open invoices as the matches before leave them (what they allocated and
    wrote off is taken). So a plan names the very invoices it posts to: batches in flight
    claim exactly those (`_apply_all`), posting locks no more than them, and a match naming
    an installment another match of the run settled takes the policy's next one. What
    changed meanwhile outside the run, posting's checks against the locked rows catch."""

    def __init__(self, settings: Settings) -> None:
        self.order = settings.allocation_order
        self.tolerance = Tolerance(settings.writeoff_tolerance_abs, settings.writeoff_tolerance_pct)
        # invoice id -> the open invoices of its policy, oldest first (from the index)
        self.policy: dict[str, tuple[OpenInvoice, ...]] = {}
        self.taken: dict[str, int] = {}  # invoice id -> allocated and written off by the run

    def remember(self, decision: MatchDecision, index: CandidateIndex) -> None:
        """Keep the policies of a match's invoices while the index is at hand."""
        if self.order == "as_named" or decision.outcome not in ("matched", "partial"):
            return
        known = self.policy
        for invoice_id, _ in decision.allocations:
            inv = None if invoice_id in known else index.invoices.get(invoice_id)
            if inv is not None:
                group = index.policy_invoices(inv)
                for other in group:
                    known[other.id] = group

    def apply(self, decision: MatchDecision) -> MatchDecision:
        """The match in allocation order (itself when the order moves nothing); what it
        allocates and writes off is taken."""
        if decision.outcome not in ("matched", "partial"):
            return decision
        if self.order != "as_named":
            moved = self._ordered(decision)
            if moved is not None:
                decision = moved
        taken = self.taken
        for invoice_id, amount in (*decision.allocations, *decision.write_offs):
            taken[invoice_id] = taken.get(invoice_id, 0) + amount
        return decision

    def _as_named(self, decision: MatchDecision) -> bool:
        """The common case, told without the rule: each named invoice can take what is named
        on it, and no older installment of its policy has something due (each amount read
        as the run leaves it, only for the installments looked at)."""
        taken = self.taken
        for invoice_id, amount in decision.allocations:
            for inv in self.policy[invoice_id]:  # oldest first
                due = inv.amount_due - taken.get(inv.id, 0)
                if inv.id == invoice_id:
                    if due < amount:
                        return False
                    break
                if due > 0:
                    return False
        return True

    def _written_off_now(self, decision: MatchDecision) -> MatchDecision | None:
        """A match paying what it named, its write-offs as the tolerance rule gives them on
        what is due now (None: as the matcher planned). The matcher read its snapshot; an
        earlier match of the run the order moved onto the named invoice may have left it
        so little due that this payment's remainder is within tolerance (a partial payment
        of 76.63 on an invoice with 76.64 left): posting's rule writes that off, and a plan
        without it would not post."""
        taken = self.taken
        if not any(taken.get(invoice_id) for invoice_id, _ in decision.allocations):
            return None
        merged: dict[str, int] = {}
        for invoice_id, amount in decision.allocations:
            merged[invoice_id] = merged.get(invoice_id, 0) + amount
        by_id = {inv.id: inv for invoice_id in merged for inv in self.policy[invoice_id]}
        left = {
            int(i): (
                by_id[i].amount_due - taken.get(i, 0) - a,
                by_id[i].total or by_id[i].amount_due,
            )
            for i, a in merged.items()
        }
        write_offs = tolerance_write_offs(decision.credit, left, self.tolerance)
        if write_offs == sorted((int(i), a) for i, a in decision.write_offs):
            return None
        return replace(decision, write_offs=tuple((str(i), a) for i, a in write_offs))

    def _ordered(self, decision: MatchDecision) -> MatchDecision | None:
        groups: dict[int, tuple[OpenInvoice, ...]] = {}  # by identity: one per policy
        for invoice_id, _ in decision.allocations:
            group = self.policy.get(invoice_id)
            if group is None:
                return None  # not in the snapshot: posting decides
            groups[id(group)] = group
        if self._as_named(decision):
            return self._written_off_now(decision)
        taken = self.taken
        due = {
            inv.id: inv.amount_due - taken.get(inv.id, 0)
            for group in groups.values()
            for inv in group
        }
        named = [(int(i), a) for i, a in decision.allocations]
        installments = [
            Installment(int(inv.id), policy, inv.due_date, due[inv.id], inv.total or 0)
            for policy, group in enumerate(groups.values())
            for inv in group
        ]
        ordered = allocation_order(
            named,
            installments,
            self.order,
            write_offs=[(int(i), a) for i, a in decision.write_offs],  # the matcher's verdict
            tolerance=self.tolerance,
        )
        if same_allocations(ordered, named):
            return None
        by_id = {inv.id: inv for group in groups.values() for inv in group}
        left = {
            i: (due[str(i)] - a, by_id[str(i)].total or by_id[str(i)].amount_due)
            for i, a in ordered
        }
        write_offs = tolerance_write_offs(decision.credit, left, self.tolerance)
        return replace(
            decision,
            allocations=tuple((str(i), a) for i, a in ordered),
            write_offs=tuple((str(i), a) for i, a in write_offs),
            evidence=named_evidence(decision.evidence, named),
        )


# ----------------------------------------------------------------------------- a run


def run_reconciliation(
    session: Session,
    settings: Settings,
    as_of: date,
    *,
    trigger: str = "api",
    progress: Progress | None = None,
) -> ReconciliationRun:
    """Match every suspense payment; post the matches set-based (those naming an invoice
    first, see NAMED) and record the rest with their candidates. Returns the finished run."""
    started = time.perf_counter()
    run = ReconciliationRun(as_of=as_of, trigger=trigger, status="running")
    session.add(run)
    session.commit()
    stats = RunStats()
    writers: _Writers | None = None
    frozen = False
    try:
        shared = _Shared()
        with gc_paused():  # not around the writers' fork: they would inherit it off
            payments = _suspense_payments(session, shared)
        writers = _Writers(session, settings, run.id, as_of, payments=len(payments))
        rules = match_settings(settings)
        with gc_paused():
            recent = _RecentPayments(session, payments, rules.duplicate_window_days, shared)
            held = _suspense_payments(session, shared, held=True)
            index: CandidateIndex | None = _index(session, shared)
        session.rollback()  # release the snapshot: posting locks what it posts
        # The snapshot's millions of objects live as long as the run: kept out of the
        # collector's full passes (each would walk them all again while matching).
        gc.freeze()
        frozen = True
        stats.held = _rank_held(session, index, rules, held)
        later: list[MatchDecision] = []
        in_order = InOrder(settings)

        def first_pass(index: CandidateIndex) -> Iterator[MatchDecision]:
            for payment in payments:
                stats.examined += 1
                decision = match_payment(payment, index, rules, recent.before(payment))
                in_order.remember(decision, index)
                if decision.outcome in ("matched", "partial") and decision.rule not in NAMED:
                    # posted after the matches that name an invoice; refused, it is decided
                    # again (below), so its candidates are not kept
                    later.append(replace(decision, candidates=()))
                    continue
                yield decision

        _apply_all(writers, first_pass(index), stats, progress, in_order)
        index = None  # a second decision reads the invoices still open afresh
        again: set[int] = set()
        _apply_all(writers, later, stats, progress, in_order, again=again)
        if again:  # an invoice a match naming it took: decide again among the open ones
            payer = {d.payment_id: d.policyholder_id for d in later if int(d.payment_id) in again}
            later.clear()
            index = _index(session, shared)
            retry = [p for p in payments if int(p.id) in again]
            session.rollback()
            in_order = InOrder(settings)

            def decided(index: CandidateIndex) -> Iterator[MatchDecision]:
                for p in retry:
                    decision = match_payment(p, index, rules, recent.before(p))
                    in_order.remember(decision, index)
                    yield _same_payer(decision, payer[p.id])

            _apply_all(writers, decided(index), stats, None, in_order)
    except BaseException:
        session.rollback()
        _finish(session, run.id, "failed", stats, started)
        raise
    finally:
        if writers is not None:
            writers.close()
        if frozen:
            gc.unfreeze()
    return _finish(session, run.id, "succeeded", stats, started)


def _same_payer(decision: MatchDecision, payer: str | None) -> MatchDecision:
    """A second decision may only choose another invoice of the payer the first one named:
    with that payer's invoices paid, a similar name could otherwise look unambiguous."""
    if decision.outcome not in ("matched", "partial") or decision.policyholder_id == payer:
        return decision
    return MatchDecision(
        decision.payment_id,
        "suspense",
        rule="none",
        evidence={"reason": f"the invoices of ph_{payer} it matched are paid by other payments"},
        candidates=decision.candidates,
    )


def _index(session: Session, shared: _Shared) -> CandidateIndex:
    return CandidateIndex.build(
        _open_invoices(session, shared), _policyholders(session, shared), _links(session, shared)
    )


def _finish(
    session: Session, run_id: int, status: str, stats: RunStats, started: float
) -> ReconciliationRun:
    """Record the run's outcome (and count it for GET /metrics); `started`: its perf_counter."""
    run = session.get(ReconciliationRun, run_id)
    assert run is not None
    run.status = status
    run.examined = stats.examined
    run.matched = stats.matched
    run.partially_matched = stats.partially_matched
    run.suspense = stats.suspense
    run.stats = stats.as_dict()
    run.finished_at = utcnow()
    session.commit()
    metrics.record_run(
        status,
        {"matched": stats.matched, "partially_matched": stats.partially_matched,
         "suspense": stats.suspense},
        stats.rules,
        time.perf_counter() - started,
    )  # fmt: skip
    log.info(
        "reconciliation run finished",
        extra={"event": "reconciliation_run", "run_id": run_id, "status": status,
               "examined": stats.examined, "matched": stats.matched},
    )  # fmt: skip
    return run


class _Writers:
    """Where a run's batches are written: WRITERS sessions of their own on PostgreSQL (one
    on SQLite), each fed one batch at a time (`_write`), at most WRITES_IN_FLIGHT waiting.

    Matching (this thread) is Python all along, and so is much of writing a batch (the
    posting engine's rules, the rows handed to the database): in threads they share the
    GIL, which holds a large run to about one core. A run deciding at least
    `reconcile_writer_processes_from` payments (PostgreSQL) writes from processes instead,
    forked from this one (what they need, the handlers, the audit trail's listeners, the
    actor and the settings, comes with the fork; each opens its own connection): matching
    and writing then run on cores of their own, beside the database's."""

    def __init__(
        self, session: Session, settings: Settings, run_id: int, as_of: date, payments: int
    ) -> None:
        bind = session.get_bind()
        postgres = bind.dialect.name == "postgresql"
        count = WRITERS if postgres else 1
        self.run_id, self.as_of = run_id, as_of
        threshold = settings.reconcile_writer_processes_from
        self.pool: Executor
        if postgres and 0 < threshold <= payments:
            url = bind.engine.url.render_as_string(hide_password=False)
            args = (url, _wiring(session), settings, current_actor())
            gc.freeze()  # the children leave this process's objects alone (no copy on write)
            try:
                self.pool = ProcessPoolExecutor(
                    count,
                    mp_context=multiprocessing.get_context("fork"),
                    initializer=_start_writer,
                    initargs=args,
                )
                self.pool.submit(_write_nothing).result()  # forked now, while frozen
            finally:
                gc.unfreeze()
            self.sessions: list[Session] = []
        else:  # threads, each with a session on the run's connection pool
            self.sessions = []
            lock = threading.Lock()

            def start() -> None:
                _start_thread_writer(bind, _wiring(session), settings, current_actor())
                with lock:
                    self.sessions.append(_writer.session)

            self.pool = ThreadPoolExecutor(
                count, thread_name_prefix="reconcile-writer", initializer=start
            )

    def submit(
        self,
        matches: list[MatchDecision],
        others: list[tuple[MatchDecision, str | None]],
        again: bool,
    ) -> Future[dict[int, str]]:
        return self.pool.submit(_write, self.run_id, self.as_of, matches, others, again)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        for writer_session in self.sessions:
            writer_session.close()


_writer = threading.local()  # a writer's session and settings (a thread's, or a process's)


def _wiring(session: Session) -> dict[str, Any]:
    """A writer session's `info`: the run session's domain-event handlers, and nothing of
    its transaction's state (what the audit trail and the journal queue for a commit)."""
    return {HANDLERS: session.info.get(HANDLERS)}


def _start_thread_writer(bind: Any, info: dict[str, Any], settings: Settings, actor: Actor) -> None:
    _writer.session = Session(bind=bind, expire_on_commit=False, info=info)
    _writer.settings = settings
    set_actor(actor)


def _start_writer(url: str, info: dict[str, Any], settings: Settings, actor: Actor) -> None:
    """A writer process: its own engine and session (the domain events wired as in the
    run's session); closed when the process ends."""
    engine = make_engine(url, pool_size=1, max_overflow=0)
    _start_thread_writer(engine, info, settings, actor)
    multiprocessing.util.Finalize(None, _close_writer, args=(engine,), exitpriority=10)


def _close_writer(engine: Any) -> None:
    _writer.session.close()
    engine.dispose()


def _write_nothing() -> None:
    """A first task: the writer processes start (fork) when it is submitted."""


def _write(
    run_id: int,
    as_of: date,
    matches: list[MatchDecision],
    others: list[tuple[MatchDecision, str | None]],
    again: bool,
) -> dict[int, str]:
    """In a writer, one transaction: post the matches, then record the suspense items of
    `others` and, unless `again`, of the matches refused. Returns {payment id: why refused}."""
    session: Session = _writer.session
    try:
        refused = _post_batch(session, _writer.settings, run_id, matches, as_of) if matches else {}
        if not again:
            others = others + [
                (d, refused[int(d.payment_id)]) for d in matches if int(d.payment_id) in refused
            ]
        _record_suspense(session, run_id, others)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return refused


def _apply_all(
    writers: _Writers,
    decisions: Iterable[MatchDecision],
    stats: RunStats,
    progress: Progress | None,
    in_order: InOrder,
    *,
    again: set[int] | None = None,
) -> None:
    """Post the matches set-based, POST_BATCH per transaction (`payments.posting.post` checks
    each against the locked, current amounts: the index is a snapshot); record the rest. With
    `again`, a match refused because its invoice changed is not recorded but added there.

    Matching (this thread) and writing (`_Writers`) overlap. Batches in flight together
    never share an invoice: a match wanting an invoice that an earlier match of this pass
    wants is held back and posted after them, in waves (each wave's matches share no
    invoice; a match wanting one of an earlier held match's goes in a later wave), so the
    outcome is the one of posting every batch in turn."""
    in_flight: deque[tuple[Future[dict[int, str]], list[MatchDecision], list[Any]]] = deque()
    pending: list[tuple[MatchDecision, str | None]] = []
    batch: list[MatchDecision] = []
    claimed: set[str] = set()  # invoices of the matches submitted in this pass
    held: list[MatchDecision] = []  # matches wanting a claimed invoice: posted last

    def tally(
        future: Future[dict[int, str]],
        matches: list[MatchDecision],
        others: list[tuple[MatchDecision, str | None]],
    ) -> None:
        refused = future.result()
        suspense = list(others)
        for decision in matches:
            why = refused.get(int(decision.payment_id))
            if why is None:
                if decision.outcome == "matched":
                    stats.matched += 1
                else:
                    stats.partially_matched += 1
                stats.written_off += len(decision.write_offs)
                stats.rules[decision.rule] = stats.rules.get(decision.rule, 0) + 1
            elif again is not None:
                again.add(int(decision.payment_id))
            else:
                stats.not_posted += 1
                suspense.append((decision, why))
        for decision, why in suspense:
            stats.suspense += 1
            stats.duplicates += why is None and decision.outcome == "duplicate"
            stats.returns += why is None and decision.outcome == "return"
        if progress is not None:
            progress(len(matches) + len(others) - (again is not None) * len(refused))

    def submit(limit: int) -> None:
        nonlocal batch, pending
        future = writers.submit(batch, pending, again is not None)
        in_flight.append((future, batch, pending))
        batch, pending = [], []
        while len(in_flight) > limit:
            tally(*in_flight.popleft())

    for decision in decisions:
        if decision.outcome in ("matched", "partial"):
            decision = in_order.apply(decision)  # the invoices it posts to
            (batch if _claim(decision, claimed) else held).append(decision)
        else:
            pending.append((decision, None))
        if len(batch) >= POST_BATCH or len(pending) >= SUSPENSE_BATCH:
            submit(WRITES_IN_FLIGHT)
            while in_flight and in_flight[0][0].done():
                tally(*in_flight.popleft())
    submit(0)
    while held:  # after all the others, in waves whose matches share no invoice
        wave, waiting, claimed = [], [], set()
        for decision in held:  # in order
            (wave if _claim(decision, claimed) else waiting).append(decision)
        for start in range(0, len(wave), POST_BATCH):  # the wave's batches at once
            batch = wave[start : start + POST_BATCH]
            submit(WRITES_IN_FLIGHT if start + POST_BATCH < len(wave) else 0)
        held = waiting


def _claim(decision: MatchDecision, claimed: set[str]) -> bool:
    """Whether the match wants no invoice of `claimed` (it may then go with those before
    it); its invoices are claimed either way, so a later match wanting one of them waits."""
    wanted = [i for i, _ in decision.allocations]
    free = claimed.isdisjoint(wanted)
    claimed.update(wanted)
    return free


def _post_batch(
    session: Session,
    settings: Settings,
    run_id: int,
    decisions: list[MatchDecision],
    as_of: date,
) -> dict[int, str]:
    """Post a batch of matches (in allocation order already: `InOrder`) and take their
    payments off the suspense queue; not committed. Returns {payment id: why} for the matches
    that no longer fit."""
    plans = []
    for decision in decisions:
        evidence: dict[str, Any] = {"score": decision.score, **decision.evidence}
        if decision.credit:
            evidence["credit"] = decision.credit
        if decision.write_offs:
            evidence["write_offs"] = [[f"inv_{i}", a] for i, a in decision.write_offs]
        plans.append(
            Plan(
                payment_id=int(decision.payment_id),
                allocations=[(int(i), a) for i, a in decision.allocations],
                write_offs=[(int(i), a) for i, a in decision.write_offs],
                rule=decision.rule,
                evidence=evidence,
            )
        )
    refused = post(session, settings, plans, on=as_of, memo=f"reconciliation run {run_id}")
    posted = [p.payment_id for p in plans if p.payment_id not in refused]
    if posted:
        done = any_of(session, SuspenseItem.payment_id, posted)
        session.execute(delete(SuspenseItem).where(done))
    return refused


def candidates_json(candidates: Iterable[Candidate]) -> list[dict[str, Any]]:
    """Ranked candidates as a suspense item keeps them."""
    return [
        {"invoice_id": int(c.invoice_id), "score": c.score, "rule": c.rule, "reason": c.reason}
        for c in candidates
    ]


def _rank_held(
    session: Session, index: CandidateIndex, rules: MatchSettings, held: list[PaymentFacts]
) -> int:
    """Rank again the candidates of the payments held for a person (a match of theirs was
    undone: a run never posts them), from the open invoices of this run; committed. Returns
    how many."""
    if not held:
        return 0
    rows = [
        {
            "pid": int(p.id),
            "candidates": candidates_json(
                rank_candidates(p, index, rules, name_tokens(p.payer_name or ""))
                if p.amount > 0 and p.currency in index.currencies
                else ()
            ),
        }
        for p in held
    ]
    table = SuspenseItem.__table__
    session.execute(
        update(table)
        .where(table.c.payment_id == bindparam("pid"))
        .values(candidates=bindparam("candidates"), updated_at=utcnow()),
        rows,
    )
    session.commit()
    return len(rows)


def _record_suspense(
    session: Session, run_id: int, pending: list[tuple[MatchDecision, str | None]]
) -> None:
    """Replace the suspense items of these payments (one statement each way; not committed)."""
    if not pending:
        return
    ids = [int(d.payment_id) for d, _ in pending]
    custom_plans(session)
    session.execute(delete(SuspenseItem).where(any_of(session, SuspenseItem.payment_id, ids)))
    cached_plans(session)
    now = utcnow()
    rows = []
    for decision, why in pending:
        reason = why or decision.evidence.get("reason")
        if decision.outcome == "duplicate":
            reason = f"likely duplicate of pay_{decision.evidence.get('duplicate_of')}"
        elif decision.outcome == "return":
            reason = decision.evidence.get("reason")
        elif decision.outcome in ("matched", "partial"):
            reason = f"match not posted: {why}"
        rows.append(
            {
                "payment_id": int(decision.payment_id),
                "run_id": run_id,
                "outcome": decision.outcome if why is None else "suspense",
                "reason": reason,
                "score": float(decision.score),
                "candidates": candidates_json(decision.candidates),
                "held": False,
                "updated_at": now,
            }
        )
    session.execute(insert(SuspenseItem), rows)


# ----------------------------------------------------------------------------- reading


def suspense_view(session: Session, payments: list[Payment]) -> list[dict[str, Any]]:
    """The payments as suspense queue rows: reason, held, ranked candidates with their
    scores and reasons, each as it stands now (amount due, status) and what a manual match
    of it would allocate (`suggested_amount`: the payment's unapplied amount, at most what
    is due; 0 when nothing is due any more)."""
    ids = [p.id for p in payments]
    items = {
        i.payment_id: i
        for i in session.scalars(select(SuspenseItem).where(SuspenseItem.payment_id.in_(ids)))
    }
    invoice_ids = {c["invoice_id"] for i in items.values() for c in i.candidates or []}
    invoices = {
        row.id: row
        for row in session.execute(
            select(
                Invoice.id, Invoice.number, Invoice.amount_due, Invoice.status,
                Invoice.policyholder_id, Policy.policy_number, Invoice.due_date,
            )
            .join(Policy, Policy.id == Invoice.policy_id)
            .where(Invoice.id.in_(invoice_ids))
        )
    }  # fmt: skip
    out = []
    for payment in payments:
        item = items.get(payment.id)
        candidates = []
        for c in (item.candidates if item else []) or []:
            inv = invoices.get(c["invoice_id"])
            if inv is None:
                continue
            candidates.append(
                {
                    "invoice_id": inv.id,
                    "invoice_number": inv.number,
                    "policy_number": inv.policy_number,
                    "policyholder_id": inv.policyholder_id,
                    "due_date": inv.due_date,
                    "amount_due": inv.amount_due,
                    "invoice_status": inv.status,
                    "score": c["score"],
                    "rule": c["rule"],
                    "reason": c.get("reason"),
                    "suggested_amount": min(payment.amount_unapplied, inv.amount_due)
                    if is_payable(inv.status)
                    else 0,
                }
            )
        out.append(
            {
                "payment": payment,
                "outcome": item.outcome if item else "unexamined",
                "reason": item.reason if item else None,
                "held": bool(item and item.held),
                "score": item.score if item else 0.0,
                "candidates": candidates,
            }
        )
    return out
