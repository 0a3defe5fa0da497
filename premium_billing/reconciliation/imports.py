"""Bank statement import: a CSV, BAI2 or CAMT.053 file → bank lines, payments, reversals.

One transaction per file: a malformed line anywhere refuses the whole file (Unprocessable
naming the line or element) and nothing is kept. Lines are read as a stream and written in
set-based batches (COPY on PostgreSQL; one journal entry per booking date and one audit row
per batch; the next batch is read in a thread meanwhile), so a file of a million lines is
imported in bounded memory.

What each line becomes (`bank_lines.kind`):
- a credit: a payment (`source=bank_statement`, `external_id` = the bank reference) with the
  remittance text and the payer's name; its account is kept on the bank line;
- a credit whose text names Stripe (STRIPE_DEPOSIT_DESCRIPTOR): a payout deposit, matched to
  a Stripe payout (services.deposits), never a payment (the money is already counted);
- a returned item debit: the payment it returns is reversed (payments.posting.reverse);
- any other debit, or a returned credit: kept, unexplained, for the daily report.
The same file twice is recognised by its SHA-256; the same line in an overlapping file by
(account, bank reference) — both create nothing new.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import date
from functools import partial
from typing import IO, Any, BinaryIO

from sqlalchemy import Connection, Engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.audit import trail as audit
from premium_billing.config import Settings
from premium_billing.db.bulk import insert_rows, reserve_ids
from premium_billing.errors import Conflict, Unprocessable
from premium_billing.payments.models import Payment
from premium_billing.payments.posting import (
    Receipts,
    Received,
    prepare_receipts,
    receive,
    record_receipts,
    reverse,
)
from premium_billing.reconciliation.bank_files import StatementError, StatementLine, read_statement
from premium_billing.reconciliation.matching import normalize_account, normalize_name
from premium_billing.reconciliation.models import BankLine, BankStatement
from premium_billing.threads import read_ahead

log = logging.getLogger(__name__)

BATCH_SIZE = 4000
YIELD_EVERY = 32  # lines read between two offers of the GIL to the writer
HASH_CHUNK = 1 << 20

Progress = Callable[[int], None]


@dataclass(frozen=True)
class ImportResult:
    statement_id: int
    lines: int
    payments_created: int
    duplicates_skipped: int
    returns_reversed: int = 0
    payout_deposits: int = 0
    created: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "statement_id": self.statement_id,
            "lines": self.lines,
            "payments_created": self.payments_created,
            "duplicates_skipped": self.duplicates_skipped,
            "returns_reversed": self.returns_reversed,
            "payout_deposits": self.payout_deposits,
        }


def _seekable(stream: BinaryIO) -> tuple[IO[bytes], bool]:
    try:
        if stream.seekable():
            return stream, False
    except (AttributeError, OSError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)  # noqa: SIM115
    shutil.copyfileobj(stream, spool)
    spool.seek(0)
    return spool, True


def _sha256(stream: IO[bytes]) -> str:
    start = stream.tell()
    digest = hashlib.sha256()
    while chunk := stream.read(HASH_CHUNK):
        digest.update(chunk)
    stream.seek(start)
    return digest.hexdigest()


def _batches(
    lines: Iterator[StatementLine], size: int, prepare: Callable[[list[StatementLine]], Any]
) -> Iterator[Any]:
    """The lines in batches of `size`, each as `prepare` makes it. Read (parsed) in a thread
    while the batch before is written (`threads.read_ahead`, one batch ahead at most: bounded
    memory): the writes mostly wait on the database, with the GIL released. The reader
    offers the GIL back every YIELD_EVERY lines: the writer wants it at once when an answer
    comes, and would else wait out the interpreter's switch interval (5 ms) at every answer,
    which cost what reading ahead saved. `prepare` runs in the reader thread too
    (`_Preparer` builds a batch's rows there on PostgreSQL); the thread never touches the
    session."""
    batch: list[StatementLine] = []
    for line in lines:
        batch.append(line)
        if len(batch) >= size:
            yield prepare(batch)
            batch = []
        elif len(batch) % YIELD_EVERY == 0:
            time.sleep(0)
    if batch:
        yield prepare(batch)


def import_statement(
    session: Session,
    settings: Settings,
    stream: BinaryIO,
    *,
    format: str | None = None,
    filename: str | None = None,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
) -> ImportResult:
    """Import one statement file in one transaction (committed here). StatementError of the
    readers becomes Unprocessable (field `file`, the message naming the line or element)."""
    source, spooled = _seekable(stream)
    try:
        return _import(session, settings, source, format, filename, progress, max(1, batch_size))
    finally:
        if spooled:
            source.close()


def _import(
    session: Session,
    settings: Settings,
    stream: IO[bytes],
    format: str | None,
    filename: str | None,
    progress: Progress | None,
    batch_size: int,
) -> ImportResult:
    sha = _sha256(stream)
    existing = session.scalar(select(BankStatement).where(BankStatement.sha256 == sha))
    if existing is not None:
        return ImportResult(existing.id, existing.lines, 0, existing.lines, created=False)
    mapping = settings.bank_csv_mapping if format in (None, "csv") else None
    try:
        parsed = read_statement(stream, format, mapping or None)  # type: ignore[arg-type]
    except StatementError as error:
        raise Unprocessable(str(error), field="file") from None
    if mapping and parsed.format != "csv":
        mapping = None
    statement = BankStatement(
        sha256=sha,
        format=parsed.format,
        filename=(filename or None) and filename[:255],
        account=parsed.account,
        currency=parsed.currency,
        opening_balance=parsed.opening_balance,
        closing_balance=parsed.closing_balance,
    )
    session.add(statement)
    session.flush()
    account = parsed.account or ""
    descriptor = settings.stripe_deposit_descriptor.upper()
    totals = {"lines": 0, "payments": 0, "duplicates": 0, "returns": 0, "deposits": 0}
    returns: list[tuple[int, StatementLine]] = []
    bind = session.get_bind()
    preparer = (
        _Preparer(bind, statement.id, account, descriptor)
        if isinstance(bind, Engine) and bind.dialect.name == "postgresql"
        else None
    )
    try:
        ahead = _batches(parsed.lines, batch_size, preparer or _as_read)
        # the reader's errors raised here in turn; the thread stopped on the way out
        with closing(read_ahead(ahead, depth=1, name="statement-reader")) as batches:
            for batch in batches:
                _write_batch(session, statement.id, account, descriptor, batch, totals, returns)
                if progress is not None:
                    progress(len(batch))
        reversed_count = _reverse_returns(session, settings, returns)
        from premium_billing.reconciliation.deposits import match_deposits

        match_deposits(session, settings)
    except StatementError as error:
        session.rollback()
        raise Unprocessable(str(error), field="file") from None
    except BaseException:
        session.rollback()
        raise
    finally:
        if preparer is not None:
            preparer.close()
    statement.lines = totals["lines"]
    statement.payments_created = totals["payments"]
    statement.duplicates_skipped = totals["duplicates"]
    statement.returns = totals["returns"]
    try:
        session.commit()
    except IntegrityError as error:
        session.rollback()
        raise Conflict(
            "another import of this file or of these lines ran at the same time; try again"
        ) from error
    log.info(
        "statement imported",
        extra={
            "event": "statement_imported",
            "statement_id": statement.id,
            "lines": totals["lines"],
            "payments_created": totals["payments"],
        },
    )
    return ImportResult(
        statement.id,
        totals["lines"],
        totals["payments"],
        totals["duplicates"],
        reversed_count,
        totals["deposits"],
    )


def _kind(line: StatementLine, descriptor: str) -> str:
    if line.amount > 0:
        if line.is_return:
            return "return_credit"  # a returned item credited back: never new money
        text = f"{line.payer_name or ''} {line.reference}".upper()
        if descriptor and descriptor in text:
            return "payout_deposit"
        return "payment"
    return "return" if line.is_return else "debit"


def _as_read(batch: list[StatementLine]) -> list[StatementLine]:
    return batch


@dataclass
class _Prepared:
    """A batch with what it writes built in the reader thread (`_Preparer`)."""

    lines: list[StatementLine]
    fresh: list[StatementLine]
    kinds: list[str]
    receipts: Receipts
    rows: list[dict[str, Any]]  # the bank lines, with their ids

    def __len__(self) -> int:
        return len(self.lines)


class _Preparer:
    """On PostgreSQL, in the reader thread: a batch's rows built while the batch before is
    written, so the import's Python overlaps the server's work. On a connection of its own
    (autocommit): which lines were imported before (`_SEEN_PG`; a file's own references are
    unique, so no earlier batch of this file can be among them), and the ids of the batch's
    payments, entries and bank lines, reserved from their sequences; then the rows, by the
    same functions as the writer's road (`payments.posting.prepare_receipts`, `_bank_rows`).
    The writer thread only writes them (`_write_prepared`)."""

    def __init__(self, engine: Engine, statement_id: int, account: str, descriptor: str) -> None:
        self.engine = engine
        self.statement_id, self.account, self.descriptor = statement_id, account, descriptor
        self.conn: Connection | None = None

    def __call__(self, batch: list[StatementLine]) -> _Prepared:
        if self.conn is None:
            self.conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        conn = self.conn
        refs = [line.bank_reference for line in batch]
        seen = set(conn.execute(_SEEN_PG, {"refs": refs, "account": self.account}).scalars())
        fresh, kinds, items = _sorted_out(batch, seen, self.descriptor)
        receipts = prepare_receipts(
            items,
            source="bank_statement",
            memo=_memo(self.statement_id),
            cash_per_entry=True,
            reserve=partial(reserve_ids, conn),
        )
        payment_ids = dict(zip((i.external_id for i in items), receipts.ids, strict=True))
        rows = _bank_rows(self.statement_id, self.account, fresh, kinds, payment_ids)
        for line_id, row in zip(
            reserve_ids(conn, BankLine.__table__, len(rows)), rows, strict=True
        ):
            row["id"] = line_id
        return _Prepared(batch, fresh, kinds, receipts, rows)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def _write_prepared(
    session: Session,
    statement_id: int,
    batch: _Prepared,
    totals: dict[str, int],
    returns: list[tuple[int, StatementLine]],
) -> None:
    """Write a batch `_Preparer` built: what `_write_batch` writes, the same rows."""
    totals["lines"] += len(batch.lines)
    totals["duplicates"] += len(batch.lines) - len(batch.fresh)
    if not batch.fresh:
        return
    totals["payments"] += len(record_receipts(session, batch.receipts))
    insert_rows(session, BankLine.__table__, batch.rows)
    line_ids = [row["id"] for row in batch.rows]
    _written(session, statement_id, line_ids, batch.fresh, batch.kinds, totals, returns)


def _write_batch(
    session: Session,
    statement_id: int,
    account: str,
    descriptor: str,
    batch: list[StatementLine] | _Prepared,
    totals: dict[str, int],
    returns: list[tuple[int, StatementLine]],
) -> None:
    """Write a batch: its bank lines, and a payment for each new credit."""
    if isinstance(batch, _Prepared):
        _write_prepared(session, statement_id, batch, totals, returns)
        return
    totals["lines"] += len(batch)
    seen = _seen(session, account, [line.bank_reference for line in batch])
    fresh, kinds, items = _sorted_out(batch, seen, descriptor)
    totals["duplicates"] += len(batch) - len(fresh)
    if not fresh:
        return
    payment_ids: dict[str | None, int] = {}
    if items:
        ids = receive(
            session, items, source="bank_statement", memo=_memo(statement_id), cash_per_entry=True
        )
        payment_ids = dict(zip((i.external_id for i in items), ids, strict=True))
        totals["payments"] += len(items)
    rows = _bank_rows(statement_id, account, fresh, kinds, payment_ids)
    line_ids = insert_rows(session, BankLine.__table__, rows, ids=True)
    _written(session, statement_id, line_ids, fresh, kinds, totals, returns)


def _sorted_out(
    batch: list[StatementLine], seen: set[str], descriptor: str
) -> tuple[list[StatementLine], list[str], list[Received]]:
    """The lines not imported before, their kinds, and the payments their credits bring."""
    fresh = [line for line in batch if line.bank_reference not in seen]
    kinds = [_kind(line, descriptor) for line in fresh]
    credits = [line for line, kind in zip(fresh, kinds, strict=True) if kind == "payment"]
    return fresh, kinds, _received(credits)


def _written(
    session: Session,
    statement_id: int,
    line_ids: list[int],
    fresh: list[StatementLine],
    kinds: list[str],
    totals: dict[str, int],
    returns: list[tuple[int, StatementLine]],
) -> None:
    """A batch's bank lines are written: its returns kept for reversal, its counts, its
    audit row."""
    for line_id, line, kind in zip(line_ids, fresh, kinds, strict=True):
        if kind == "return":
            returns.append((line_id, line))
            totals["returns"] += 1
        elif kind == "payout_deposit":
            totals["deposits"] += 1
    audit.record(
        session,
        "imported",
        "bank_lines",
        None,
        after={"statement_id": statement_id, "first_id": line_ids[0], "count": len(line_ids)},
    )


def _memo(statement_id: int) -> str:
    return f"bank statement stm_{statement_id}"


def _received(credits: list[StatementLine]) -> list[Received]:
    """The payments these credits bring (`external_id`: the bank reference)."""
    return [
        Received(
            amount=line.amount,
            currency=line.currency,
            method="bank_transfer",
            received_on=line.booking_date,
            external_id=line.bank_reference[:255],
            payer_name=(line.payer_name or None) and line.payer_name[:200],
            reference=(line.reference or None) and line.reference[:500],
        )
        for line in credits
    ]


def _bank_rows(
    statement_id: int,
    account: str,
    fresh: list[StatementLine],
    kinds: list[str],
    payment_ids: dict[str | None, int],
) -> list[dict[str, Any]]:
    return [
        {
            "statement_id": statement_id,
            "line_no": line.line_no,
            "account": account,
            "bank_reference": line.bank_reference[:255],
            "booking_date": line.booking_date,
            "value_date": line.value_date,
            "amount": line.amount,
            "currency": line.currency,
            "payer_name": (line.payer_name or None) and line.payer_name[:200],
            "payer_account": (line.payer_account or None) and line.payer_account[:100],
            "reference": (line.reference or None) and line.reference[:500],
            "is_return": line.is_return,
            "return_reason": (line.return_reason or None) and line.return_reason[:200],
            "bank_transaction_code": line.bank_transaction_code,
            "kind": kind,
            "payment_id": payment_ids.get(line.bank_reference[:255]) if kind == "payment" else None,
        }
        for line, kind in zip(fresh, kinds, strict=True)
    ]


# A line is already imported when its account has a bank line with its reference, or when a
# bank payment has it as external id (a credit of another account's statement: its payment
# would break the unique (source, external_id)). On PostgreSQL one statement, each reference
# an index probe on both constraints' indexes: the LIMIT-ed scalar subqueries can be neither
# joined nor hashed, so no plan, generic or custom, made from the statistics of tables this
# import is still filling can turn them into a scan of everything written so far (an
# `IN (...)` probe got a bitmap scan of the leading column, every line of the account and
# every bank payment, per batch: quadratic in the file's length). So the import needs no
# `bulk.custom_plans`, which would also re-plan every foreign-key check of its COPYs (one
# per row and key: half of the server's time).
_SEEN_PG = text(
    "SELECT r.ref FROM unnest(CAST(:refs AS text[])) AS r(ref)"
    " WHERE (SELECT 1 FROM bank_lines b"
    "        WHERE b.account = :account AND b.bank_reference = r.ref LIMIT 1) IS NOT NULL"
    " OR (SELECT 1 FROM payments p"
    "     WHERE p.source = 'bank_statement' AND p.external_id = r.ref LIMIT 1) IS NOT NULL"
)


def _seen(session: Session, account: str, refs: list[str]) -> set[str]:
    """The references of `refs` already imported (see `_SEEN_PG`)."""
    if session.get_bind().dialect.name == "postgresql":
        return set(session.scalars(_SEEN_PG, {"refs": refs, "account": account}))
    lines = select(BankLine.bank_reference).where(
        BankLine.account == account, BankLine.bank_reference.in_(refs)
    )
    payments = select(Payment.external_id).where(
        Payment.source == "bank_statement", Payment.external_id.in_(refs)
    )
    return set(session.scalars(lines.union(payments)))


def _reverse_returns(
    session: Session, settings: Settings, returns: list[tuple[int, StatementLine]]
) -> int:
    """Each returned-item debit reverses the bank payment it returns, when one is found."""
    done = 0
    for line_id, line in returns:
        original = find_returned_payment(session, line)
        if original is None:
            continue
        reverse(
            session,
            settings,
            original,
            on=line.booking_date,
            reason=f"bank return {line.return_reason or line.bank_transaction_code or ''}".strip(),
            commit=False,
        )
        row = session.get(BankLine, line_id)
        assert row is not None
        row.payment_id = original
        session.flush()
        done += 1
    return done


def find_returned_payment(session: Session, line: StatementLine) -> int | None:
    """The payment a returned item returns: same currency and amount, received on or before
    the return, not reversed; its bank reference named in the return's text or ids (a
    batched return names each original's transaction id), else the same payer account, else
    the same payer name. The most recent such payment."""
    amount = -line.amount
    stmt = (
        select(Payment.id, Payment.external_id, Payment.payer_name, BankLine.payer_account)
        .outerjoin(BankLine, BankLine.payment_id == Payment.id)
        .where(
            Payment.source == "bank_statement",
            Payment.currency == line.currency,
            Payment.amount == amount,
            Payment.status != "reversed",
            Payment.received_on <= line.booking_date,
        )
        .order_by(Payment.received_on.desc(), Payment.id.desc())
        .limit(200)
    )
    rows = session.execute(stmt).all()
    text = f"{line.reference} {line.return_reason or ''}".upper()
    names = {name.upper() for name in line.names}
    for row in rows:
        external_id = (row.external_id or "").upper()
        # A batched credit's payment is '<entry reference>/<transaction id>': a batched
        # return names the transaction id (its EndToEndId).
        if external_id and (
            external_id in text or external_id in names or external_id.rsplit("/", 1)[-1] in names
        ):
            return int(row.id)
    if line.payer_account:
        key = normalize_account(line.payer_account)
        for row in rows:
            if row.payer_account and normalize_account(row.payer_account) == key:
                return int(row.id)
    if line.payer_name:
        key = normalize_name(line.payer_name)
        for row in rows:
            if row.payer_name and normalize_name(row.payer_name) == key:
                return int(row.id)
    return None


def unexplained_on(session: Session, day: date) -> list[BankLine]:
    """Bank lines booked on `day` that nothing explains: debits, returned credits, returns
    whose payment was not found, payout deposits no payout claimed."""
    from premium_billing.stripe_billing.models import StripePayout

    claimed = select(StripePayout.bank_line_id).where(StripePayout.bank_line_id.is_not(None))
    return list(
        session.scalars(
            select(BankLine)
            .where(
                BankLine.booking_date == day,
                BankLine.kind != "payment",
                ~((BankLine.kind == "return") & BankLine.payment_id.is_not(None)),
                BankLine.id.not_in(claimed),
            )
            .order_by(BankLine.id)
        )
    )
