"""Reconciliation through the real service on PostgreSQL: quality per noise kind and speed.

    .venv/bin/python -m bench.bench_reconcile --lines 20000 --invoices 20000

Seeds the generator's policyholders, policies, open invoices and payer links into a fresh
PostgreSQL database (set-based, then VACUUM ANALYZE as the other benchmarks do), writes the
generated bank lines as a CSV statement, imports it with services.statement_import, then
runs services.reconciliation; reads back what was posted (allocations, credit, tolerance
write-offs) and compares it with the generator's truth. Stripe-metadata lines are left out:
they never arrive in a bank file.

The floor, measured in the same run after the evaluation: what PostgreSQL must do at the
least to hold the rows the import and the run wrote. In the bench database, in one
transaction that is rolled back (nothing changes), bare SQL with no application logic writes
the same number of rows of the same shapes into the same tables, schema untouched (keys,
indexes, CHECKs, foreign keys and triggers on), each table in one INSERT … SELECT copying the
rows already there: the bank lines (fresh bank references) and payments (fresh external ids,
as the import left them: unapplied, payer unknown); the journal entries and lines of the
import (payment_received) and of the run (payment_matched, payment_allocated, written_off),
entry for entry, so each balances; the allocations and write-offs; then one UPDATE of the
payments the run matched and one of the invoices it paid (the same values again: the rows
are rewritten); and `SET CONSTRAINTS ALL IMMEDIATE`, so the deferred balance trigger runs
inside the timing. Left out: the matching engine (CPU, not the database), reading the
statement file, the locking reads and refusal checks of batch posting, and the few
bookkeeping rows (statement, run, audit rows, suspense items); the floor's ROLLBACK saves the
commits' WAL flushes.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import resource
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from datetime import date

from sqlalchemy import create_engine, func, insert, select, text

from bench.bench_matching import AUTO, Tally, pct
from bench.reconcile_data import KIND_WEIGHTS, Line, generate
from premium_billing.bootstrap import database
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.engine import normalize_url
from premium_billing.db.migrate import upgrade
from premium_billing.invoicing.models import Invoice
from premium_billing.ledger.models import JournalEntry, JournalLine
from premium_billing.money import format_major
from premium_billing.payments.models import Allocation, Payment, WriteOff
from premium_billing.policies.models import Policy, Policyholder
from premium_billing.reconciliation.models import PayerLink

BANK_KINDS = tuple((k, w) for k, w in KIND_WEIGHTS if k != "stripe")


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux: VmHWM, the high-water mark of this process's own
    memory; ru_maxrss would not do for the service, a spawned child: exec carries the
    parent's high-water mark at fork into it (the harness's, with a million generated lines)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _num(public: str) -> int:
    return int(public.split("_", 1)[1])


def seed(db: Database, holders, invoices, links) -> None:  # type: ignore[no-untyped-def]
    policies: dict[str, tuple[int, str, str]] = {}
    for inv in invoices:
        if inv.policy_number not in policies:
            policies[inv.policy_number] = (len(policies) + 1, inv.policyholder_id, inv.currency)
    with db.session() as s:
        s.execute(text("SET LOCAL session_replication_role = replica"))
        s.execute(
            insert(Policyholder),
            [
                {"id": _num(h.id), "name": h.name, "email": f"h{_num(h.id)}@example.com"}
                for h in holders
            ],
        )
        s.execute(
            insert(Policy),
            [
                {
                    "id": pid, "policy_number": number, "policyholder_id": _num(holder),
                    "product": "pet", "currency": currency, "effective_date": date(2026, 1, 1),
                    "expiration_date": date(2027, 1, 1), "term_months": 12,
                    "billing_plan": "monthly", "policy_fee": 0, "installment_fee": 0,
                    "autopay": False, "auto_renew": True, "status": "active",
                }
                for number, (pid, holder, currency) in policies.items()
            ],
        )  # fmt: skip
        totals: dict[str, int] = defaultdict(int)
        for inv in invoices:
            totals[inv.currency] += inv.amount_due
        entry = JournalEntry(kind="invoice_issued", occurred_on=date(2026, 1, 1), memo="bench")
        s.add(entry)
        s.flush()
        s.execute(
            insert(JournalLine),
            [
                {"entry_id": entry.id, "account": acct, "currency": c, "amount": sign * t}
                for c, t in totals.items()
                for acct, sign in (("premium_receivable", 1), ("premium_billed", -1))
            ],
        )
        s.execute(
            insert(Invoice),
            [
                {
                    "id": _num(inv.id), "number_seq": _num(inv.id), "number": inv.number,
                    "policy_id": policies[inv.policy_number][0],
                    "policyholder_id": _num(inv.policyholder_id), "currency": inv.currency,
                    "issue_date": date(2026, 1, 1), "due_date": inv.due_date,
                    "lines": [{"kind": "premium", "description": "Premium",
                               "amount": inv.amount_due}],
                    "total": inv.amount_due, "amount_paid": 0, "amount_written_off": 0,
                    "amount_due": inv.amount_due, "status": "open", "issue_entry_id": entry.id,
                }
                for inv in invoices
            ],
        )  # fmt: skip
        if links:
            s.execute(
                insert(PayerLink),
                [
                    {"key": link.key, "kind": "payer_account",
                     "policyholder_id": _num(link.policyholder_id)}
                    for link in links
                ],
            )  # fmt: skip
        s.commit()


def statement_csv(lines: list[Line]) -> bytes:
    out = io.StringIO()
    out.write("date,amount,currency,payer_name,reference,bank_reference,payer_account,is_return\n")
    for n, line in enumerate(lines, start=1):
        p = line.payment
        cells = [
            p.received_on.isoformat(),
            format_major(p.amount, p.currency),
            p.currency,
            p.payer_name or "",
            p.reference,
            f"BR{n:08d}",
            p.payer_account or "",
            "true" if p.is_return else "false",
        ]
        out.write(",".join('"' + c.replace('"', '""') + '"' for c in cells) + "\n")
    return out.getvalue().encode()


def outcomes(db: Database) -> dict[str, dict]:  # type: ignore[type-arg]
    """Per bank reference: what the service did with the line's payment."""
    with db.session() as s:
        pays = {
            pid: {"external_id": ext, "holder": holder, "credit": unapplied if holder else 0,
                  "allocations": [], "write_offs": []}
            for pid, ext, holder, unapplied in s.execute(
                select(Payment.id, Payment.external_id, Payment.policyholder_id,
                       Payment.amount_unapplied)
            )
        }  # fmt: skip
        for pid, inv, amount in s.execute(
            select(Allocation.payment_id, Allocation.invoice_id, func.sum(Allocation.amount))
            .group_by(Allocation.payment_id, Allocation.invoice_id)
            .having(func.sum(Allocation.amount) > 0)
        ):
            pays[pid]["allocations"].append((f"inv_{inv:07d}", int(amount)))
        for pid, inv, amount in s.execute(
            select(WriteOff.payment_id, WriteOff.invoice_id, WriteOff.amount).where(
                WriteOff.kind == "tolerance"
            )
        ):
            pays[pid]["write_offs"].append((f"inv_{inv:07d}", int(amount)))
    return {v["external_id"]: v for v in pays.values()}


def _by_policy(pairs: Iterable[tuple[str, int]], policy_of: dict[str, str]) -> Counter[str]:
    """The amount on each policy (ALLOCATION_ORDER oldest_first: a payment naming one
    installment settles its policy's oldest open ones, so what a policy gets is the truth,
    not which of its installments)."""
    totals: Counter[str] = Counter()
    for invoice, amount in pairs:
        totals[policy_of[invoice]] += amount
    return totals


def names_none(line: Line, number_of: dict[str, str]) -> bool:
    """Whether a line's text names none of its true invoices (a name-only or linked-account
    line; several invoices paid under "arrears")."""
    text = line.payment.reference.upper().replace(" ", "").replace("-", "")
    return line.kind in ("name_only", "linked_account", "several_invoices") and not any(
        number_of[invoice].replace("-", "") in text for invoice, _ in line.truth.allocations
    )


def evaluate(
    lines: list[Line],
    done: dict[str, dict],  # type: ignore[type-arg]
    policy_of: dict[str, str],
    holder_of: dict[str, str] | None = None,
    number_of: dict[str, str] | None = None,
) -> dict[str, Tally]:
    """Correct: the true amount on each true policy, credit and write-offs. Installments
    of one policy are interchangeable: a payment naming one settles the policy's oldest
    open installments first (ALLOCATION_ORDER oldest_first). A line naming no invoice
    (`names_none`) is correct with the true amount on its true policyholder instead
    (`holder_of`, `number_of` given): the billing rule pays the payer's oldest open
    installments of that amount, whichever policy, and which are open when it is decided
    is not the generator's line order: a run posts the matches naming an invoice first
    (`runs.NAMED`), each settling its policy's oldest, so a payer with two policies of one
    premium may have the generator's choice paid already and the other policy's oldest
    open. The payer's account ends the same either way. `exact_auto` counts the matches
    that also paid the very invoice of the truth."""
    tallies: dict[str, Tally] = defaultdict(Tally)
    for n, line in enumerate(lines, start=1):
        got = done.get(f"BR{n:08d}")
        truth = line.truth
        auto = bool(got and got["allocations"])
        exact = correct = False
        if auto and truth.outcome in AUTO and got["credit"] == truth.credit:
            exact = sorted(got["allocations"]) == sorted(truth.allocations) and sorted(
                got["write_offs"]
            ) == sorted(truth.write_offs)
            of = policy_of
            if holder_of is not None and number_of is not None and names_none(line, number_of):
                of = holder_of
            correct = exact or (
                _by_policy(got["allocations"], of) == _by_policy(truth.allocations, of)
                and _by_policy(got["write_offs"], of) == _by_policy(truth.write_offs, of)
            )
        for tally in (tallies[line.kind], tallies["ALL"]):
            tally.lines += 1
            matchable = truth.outcome in AUTO
            tally.matchable += matchable
            if auto:
                tally.auto += 1
                tally.auto_of_matchable += matchable
                tally.correct_auto += correct
                tally.exact_auto += exact
                tally.false += not correct
            else:
                tally.suspense += 1
                if not matchable:
                    tally.special_total += 1
                    tally.special_right += 1
    return tallies


# The floor's statements, in the order the service writes: (label, SQL). Ids are
# fresh from the sequences; `F` replaces the first character of a unique reference.
_RUN_KINDS = "('payment_matched', 'payment_allocated', 'written_off')"
_JOURNAL_COPY = """
WITH src AS (
    SELECT id AS old_id, nextval(pg_get_serial_sequence('journal_entries', 'id')) AS new_id,
           kind, occurred_on, memo, job_run_id
    FROM journal_entries WHERE kind IN {kinds}
), entries AS (
    INSERT INTO journal_entries (id, kind, occurred_on, memo, job_run_id, created_at)
    SELECT new_id, kind, occurred_on, memo, job_run_id, now() FROM src
)
INSERT INTO journal_lines (entry_id, account, currency, amount, invoice_id, payment_id,
                           policyholder_id)
SELECT src.new_id, jl.account, jl.currency, jl.amount, jl.invoice_id, jl.payment_id,
       jl.policyholder_id
FROM journal_lines jl JOIN src ON src.old_id = jl.entry_id ORDER BY jl.id
"""
FLOOR_STEPS = (
    ("payments", """
INSERT INTO payments (source, method, external_id, amount, currency, received_on, payer_name,
    reference, policyholder_id, payer_from_match, amount_allocated, amount_refunded,
    amount_reversed, amount_unapplied, status, match_rule, match_evidence, reversed_on,
    receipt_entry_id, created_at, updated_at)
SELECT source, method, 'F' || substr(external_id, 2), amount, currency, received_on,
    payer_name, reference, NULL, false, 0, 0, 0, amount, 'unapplied', NULL, NULL, NULL,
    receipt_entry_id, now(), now()
FROM payments WHERE source = 'bank_statement'"""),
    ("journal_lines (import)", _JOURNAL_COPY.format(kinds="('payment_received')")),
    ("bank_lines", """
INSERT INTO bank_lines (statement_id, line_no, account, bank_reference, booking_date,
    value_date, amount, currency, payer_name, payer_account, reference, is_return,
    return_reason, bank_transaction_code, kind, payment_id)
SELECT statement_id, line_no, account, 'F' || substr(bank_reference, 2), booking_date,
    value_date, amount, currency, payer_name, payer_account, reference, is_return,
    return_reason, bank_transaction_code, kind, payment_id
FROM bank_lines"""),
    ("journal_lines (run)", _JOURNAL_COPY.format(kinds=_RUN_KINDS)),
    ("allocations", """
INSERT INTO allocations (payment_id, invoice_id, amount, reason, entry_id, created_at)
SELECT payment_id, invoice_id, amount, reason, entry_id, now() FROM allocations"""),
    ("write_offs", """
INSERT INTO write_offs (invoice_id, amount, kind, reason, payment_id, reverses_id, entry_id,
    created_at)
SELECT invoice_id, amount, kind, reason, payment_id, reverses_id, entry_id, now()
FROM write_offs"""),
    # The run queues a receipt per payment it applied (step 9: in the posting's transaction).
    ("notifications", """
INSERT INTO notifications (kind, business_key, policyholder_id, policy_id, invoice_id, facts,
    status, attempts, next_attempt_at, created_at, updated_at)
SELECT kind, 'F' || business_key, policyholder_id, policy_id, invoice_id, facts, status,
    attempts, next_attempt_at, now(), now()
FROM notifications"""),
    ("payments update", """
UPDATE payments SET amount_allocated = amount_allocated + 0,
    amount_unapplied = amount_unapplied + 0, status = status,
    policyholder_id = policyholder_id, payer_from_match = payer_from_match,
    match_rule = match_rule, match_evidence = match_evidence, updated_at = now()
WHERE id = ANY(CAST(:matched AS bigint[]))"""),
    ("invoices update", """
UPDATE invoices SET amount_paid = amount_paid + 0,
    amount_written_off = amount_written_off + 0, amount_due = amount_due + 0,
    status = status, updated_at = now()
WHERE id = ANY(CAST(:paid AS bigint[]))"""),
    ("balance check", "SET CONSTRAINTS ALL IMMEDIATE"),
)  # fmt: skip


def floor(db: Database) -> tuple[float, list[tuple[str, int, float]]]:
    """Write the rows the import and the run wrote again with bare SQL, in one transaction
    rolled back; returns its seconds and (step, rows, seconds) per step."""
    with db.session() as s:
        matched = list(s.scalars(select(Allocation.payment_id).distinct()))
        paid = list(s.scalars(select(Allocation.invoice_id).distinct()))
    params = {"matched": matched, "paid": paid}
    steps = []
    with db.engine.connect() as conn:
        t0 = time.perf_counter()
        for label, sql in FLOOR_STEPS:
            started = time.perf_counter()
            rows = conn.execute(text(sql), params).rowcount
            steps.append((label, max(rows, 0), time.perf_counter() - started))
        total = time.perf_counter() - t0
        conn.rollback()
    return total, steps


def _service(url: str, path: str) -> tuple[int, dict, float, float, tuple[float, float]]:  # type: ignore[type-arg]
    """Import the statement file and run the reconciler, as `premium-billing` would."""
    from premium_billing.reconciliation.imports import import_statement
    from premium_billing.reconciliation.runs import run_reconciliation

    settings = Settings.from_env().with_overrides(database_url=url)
    db = database(url)
    t0 = time.perf_counter()
    with db.session() as s, open(path, "rb") as stream:
        result = import_statement(s, settings, stream, format="csv")
    t1 = time.perf_counter()
    with db.session() as s:
        run = run_reconciliation(s, settings, date(2027, 1, 15), trigger="bench")
        stats = dict(run.stats or {})
    t2 = time.perf_counter()
    db.dispose()
    # its writer processes (forked, ended with the run): the largest one's peak
    writers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return result.payments_created, stats, t1 - t0, t2 - t1, (peak_rss_mb(), writers)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--lines", type=int, default=20_000)
    ap.add_argument("--invoices", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--keep", action="store_true", help="keep the bench database")
    args = ap.parse_args(argv)

    holders, invoices, links, lines = generate(args.lines, args.invoices, args.seed, BANK_KINDS)
    name = f"pb_bench_reconcile_{uuid.uuid4().hex[:6]}"
    admin = create_engine(normalize_url(args.admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = normalize_url(args.admin_url).rpartition("/")[0] + "/" + name
    try:
        upgrade(url)
        db = database(url)
        t0 = time.perf_counter()
        seed(db, holders, invoices, links)
        # The seeded tables vacuumed and analysed before the measured import and run (a
        # production database's invoices were issued days before), not by autovacuum in the
        # middle of them. Only those: the ledger's tables hold the seed's one entry, and
        # statistics saying so would plan each foreign-key check of the import's rows on
        # `journal_entries` as a scan of a table that the import grows (a production
        # ledger is never that small).
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE policyholders, policies, invoices, payer_links"))
        seed_s = time.perf_counter() - t0
        with tempfile.NamedTemporaryFile(suffix=".csv") as csv_file:
            csv_file.write(statement_csv(lines))
            csv_file.flush()
            # The service in a process of its own: its peak RSS is the service's, not this
            # harness's (which holds the generator's lines and truths).
            # (an executor's worker, not a Pool's: it is no daemon, so the service may
            # start processes of its own)
            spawn = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                measured = pool.submit(_service, url, csv_file.name).result()
        payments_created, stats, import_s, run_s, (service_rss, writer_rss) = measured
        t1, t2, t3 = 0.0, import_s, import_s + run_s
        tallies = evaluate(
            lines,
            outcomes(db),
            {i.id: i.policy_number for i in invoices},
            {i.id: i.policyholder_id for i in invoices},
            {i.id: i.number for i in invoices},
        )
        floor_s, floor_steps = floor(db)
        db.dispose()
    finally:
        if not args.keep:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    print(
        f"{args.lines:,} bank lines x {args.invoices:,} open invoices on PostgreSQL, "
        f"{len(holders):,} policyholders, {len(links):,} payer links, seed {args.seed}"
    )
    print(f"seed {seed_s:.1f}s; import {t2 - t1:.1f}s ({payments_created:,} payments, "
          f"{args.lines / (t2 - t1):,.0f} lines/s); reconciliation run {t3 - t2:.1f}s "
          f"({stats.get('examined', 0) / (t3 - t2):,.0f} payments/s)")  # fmt: skip
    print(f"run: {stats}")
    head = (f"{'kind':18} {'lines':>8} {'matchable':>9} {'auto-match':>10} {'precision':>10} "
            f"{'false':>6} {'suspense':>9} {'exact inv.':>10}")  # fmt: skip
    print(head)
    print("-" * len(head))
    for kind in sorted(k for k in tallies if k != "ALL") + ["ALL"]:
        t = tallies[kind]
        rate = pct(t.auto_of_matchable, t.matchable)
        print(f"{kind:18} {t.lines:8d} {t.matchable:9d} {rate:>10} "
              f"{pct(t.correct_auto, t.auto):>10} {t.false:6d} "
              f"{pct(t.suspense, t.lines):>9} {pct(t.exact_auto, t.auto):>10}")  # fmt: skip
    print("(precision: the true amount on each true policy; installments of a policy are "
          "interchangeable, the oldest open settled first. exact inv.: the very invoice of the "
          "truth too)")  # fmt: skip
    total = tallies["ALL"]
    writers = (
        f", its writer processes at most {writer_rss:,.0f} MB each (pages shared with it counted)"
        if writer_rss
        else ""
    )
    print(f"end to end {t3 - t1:.1f}s ({args.lines / (t3 - t1):,.0f} lines/s); "
          f"service peak RSS {service_rss:,.0f} MB{writers} "
          f"(harness {peak_rss_mb():,.0f} MB)")  # fmt: skip
    service_s = t3 - t1
    print(
        f"floor (the same rows written with bare SQL, same schema): {floor_s:.1f}s; "
        f"service import+run {service_s:.1f}s; ratio floor/service {floor_s / service_s:.2f}"
    )
    per_table = (
        f"{label} {sec:.2f}s" if label == "balance check" else f"{label} {rows:,} rows {sec:.2f}s"
        for label, rows, sec in floor_steps
    )
    print("floor per table: " + "; ".join(per_table))
    ok = (total.correct_auto * 1000 >= 999 * total.auto
          and total.auto_of_matchable * 100 >= 95 * total.matchable)  # fmt: skip
    print("targets (precision >= 99.9%, auto-match >= 95%):", "met" if ok else "NOT met")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
