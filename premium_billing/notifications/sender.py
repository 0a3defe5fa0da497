"""The email sender: claims queued notices, sends them over SMTP, marks each sent or failed.

Never twice: a pass claims up to SENDER_BATCH rows in one statement (`UPDATE … WHERE id IN
(SELECT … FOR UPDATE SKIP LOCKED) RETURNING`, SQLite: one writer at a time), setting
`claimed_until` (a lease of SENDER_LEASE_SECONDS); another sender skips a claimed row until
its lease ends. A pass stops sending after SENDER_PASS_SECONDS (at most half the lease) and
releases what it did not reach, so a lease never ends while its sender may still send.

The window between the SMTP server's acceptance and the mark: each notice is marked sent in
its own commit right after the server's reply to DATA, one round trip to the database. Only
a crash inside that window sends it again (once its lease ends), with the same Message-ID
(`<notification-ID@domain>`), by which a mail system or reader can tell a resend.

Never blocks billing: billing only inserts the outbox row; this runs in its own process
(`premium-billing send-notifications`) with its own transactions, a few milliseconds each.
A pass sends over SMTP_CONNECTIONS connections at once, each taking its share of the batch.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.db.types import utcnow

from .models import Notification
from .render import Context, Email, load_context, render
from .rules import gives_up, retry_at

log = logging.getLogger(__name__)


@dataclass
class PassStats:
    claimed: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    released: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {
            "claimed": self.claimed,
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "released": self.released,
        }


def claim_rows(
    session: Session, table: Any, ready: Sequence[Any], limit: int, now: datetime, lease: int
) -> list[int]:
    """Claim up to `limit` rows of `table` matching `ready` whose lease is free, in one
    statement (PostgreSQL: skipping rows another sender is claiming); their ids. The caller
    commits."""
    pick = (
        select(table.c.id)
        .where(*ready, or_(table.c.claimed_until.is_(None), table.c.claimed_until < now))
        .order_by(table.c.next_attempt_at, table.c.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    claimed = session.scalars(
        update(table)
        .where(table.c.id.in_(pick))
        .values(claimed_until=now + timedelta(seconds=lease))
        .returning(table.c.id)
    ).all()
    return sorted(claimed)


def _claim(db: Database, settings: Settings, now: datetime) -> tuple[list[Any], Context]:
    table = Notification.__table__
    with db.session() as session:
        ids = claim_rows(
            session,
            table,
            [table.c.status == "queued", table.c.next_attempt_at <= now],
            settings.sender_batch,
            now,
            settings.sender_lease_seconds,
        )
        if not ids:
            session.rollback()
            return [], Context({}, {}, {})
        rows = session.execute(
            select(
                Notification.id,
                Notification.kind,
                Notification.policyholder_id,
                Notification.policy_id,
                Notification.invoice_id,
                Notification.facts,
                Notification.attempts,
            )
            .where(Notification.id.in_(ids))
            .order_by(Notification.id)
        ).all()
        context = load_context(session, rows)
        session.commit()
    return list(rows), context


def _mark(db: Database, notification_id: int, **values: Any) -> None:
    """One notice's outcome in one statement, committed as it runs (autocommit: one round
    trip, the shortest window after the server's reply)."""
    table = Notification.__table__
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(
            update(table)
            .where(table.c.id == notification_id)
            .values(claimed_until=None, updated_at=utcnow(), **values)
        )


def _failed_attempt(
    db: Database, settings: Settings, row: Any, now: datetime, error: str, *, permanent: bool
) -> str:
    attempts = row.attempts + 1
    if permanent or gives_up(attempts, settings.notify_max_attempts):
        _mark(db, row.id, attempts=attempts, status="failed", last_error=error[:1000])
        return "failed"
    _mark(
        db,
        row.id,
        attempts=attempts,
        next_attempt_at=retry_at(now, attempts, settings.notify_retry_base_seconds),
        last_error=error[:1000],
    )
    return "retried"


def _release(db: Database, ids: Sequence[int]) -> None:
    if not ids:
        return
    with db.session() as session:
        session.execute(
            update(Notification).where(Notification.id.in_(list(ids))).values(claimed_until=None)
        )
        session.commit()


def connect(settings: Settings) -> smtplib.SMTP:
    """An SMTP connection as SMTP_HOST, SMTP_PORT, SMTP_TLS, SMTP_USER, SMTP_PASSWORD say."""
    timeout = settings.smtp_timeout_seconds
    smtp: smtplib.SMTP
    if settings.smtp_tls == "ssl":
        smtp = smtplib.SMTP_SSL(
            settings.smtp_host,
            settings.smtp_port,
            timeout=timeout,
            context=ssl.create_default_context(),
        )
    else:
        smtp = smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=timeout)
        if settings.smtp_tls == "starttls":
            smtp.starttls(context=ssl.create_default_context())
    if settings.smtp_user:
        smtp.login(settings.smtp_user, settings.smtp_password)
    return smtp


def _permanent(error: smtplib.SMTPException) -> bool:
    """A 5xx answer about this message (a refused recipient, a rejected message)."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return all(code >= 500 for code, _ in error.recipients.values())
    code = getattr(error, "smtp_code", None)
    return isinstance(code, int) and code >= 500


CONNECTION_ERRORS = (OSError, smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError)


def send_pass(
    db: Database,
    settings: Settings,
    *,
    now: datetime | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> PassStats:
    """Claim a batch of due notices and send it over SMTP_CONNECTIONS connections at once
    (a message is a few round trips: latency, not work), bounded by SENDER_BATCH notices
    and SENDER_PASS_SECONDS. `now` (UTC) decides what is due and when a failure is retried
    (tests give a later one instead of waiting)."""
    now = now or utcnow()
    rows, context = _claim(db, settings, now)
    if not rows:
        return PassStats()
    deadline = clock() + settings.sender_pass_seconds
    count = max(1, min(settings.smtp_connections, len(rows)))
    shares = [rows[i::count] for i in range(count)]
    with ThreadPoolExecutor(max_workers=count) as pool:
        parts = list(
            pool.map(
                lambda share: _send_share(db, settings, share, context, now, deadline, clock),
                shares,
            )
        )
    stats = PassStats(claimed=len(rows))
    for part in parts:
        for name in ("sent", "retried", "failed", "released"):
            setattr(stats, name, getattr(stats, name) + getattr(part, name))
        stats.errors.extend(part.errors)
    return stats


def _send_share(
    db: Database,
    settings: Settings,
    rows: Sequence[Any],
    context: Context,
    now: datetime,
    deadline: float,
    clock: Callable[[], float],
) -> PassStats:
    """Send `rows` over one SMTP connection until the deadline; release what is left."""
    stats = PassStats()
    try:
        smtp = connect(settings)
    except (*CONNECTION_ERRORS, smtplib.SMTPException) as error:
        reason = f"SMTP connection: {type(error).__name__}: {error}"
        stats.errors.append(reason)
        for row in rows:
            outcome = _failed_attempt(db, settings, row, now, reason, permanent=False)
            setattr(stats, outcome, getattr(stats, outcome) + 1)
        return stats
    pending = list(rows)
    try:
        while pending and clock() <= deadline:
            row = pending.pop(0)
            try:
                email = render(row, context, settings)
            except Exception as error:  # a template or its data: a retry will not mend it
                log.exception("notification render failed", extra={"notification": row.id})
                _failed_attempt(db, settings, row, now, f"render: {error}", permanent=True)
                stats.failed += 1
                continue
            if _send_one(db, settings, smtp, row, email, now, stats) == "disconnected":
                break
    finally:
        try:
            smtp.quit()
        except (*CONNECTION_ERRORS, smtplib.SMTPException):
            smtp.close()
    # Not reached within the pass (time, or the server went away): free for the next pass.
    _release(db, [r.id for r in pending])
    stats.released = len(pending)
    return stats


def _send_one(
    db: Database,
    settings: Settings,
    smtp: smtplib.SMTP,
    row: Any,
    email: Email,
    now: datetime,
    stats: PassStats,
) -> str:
    try:
        smtp.sendmail(settings.mail_from, [email.address], email.message(settings.mail_from))
    except CONNECTION_ERRORS as error:
        stats.errors.append(str(error))
        outcome = _failed_attempt(db, settings, row, now, f"SMTP: {error}", permanent=False)
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        return "disconnected"
    except smtplib.SMTPException as error:
        outcome = _failed_attempt(
            db, settings, row, now, f"SMTP: {error}", permanent=_permanent(error)
        )
        setattr(stats, outcome, getattr(stats, outcome) + 1)
        return outcome
    # Accepted: marked at once (the window in the module doc).
    _mark(
        db,
        row.id,
        status="sent",
        attempts=row.attempts + 1,
        sent_at=utcnow(),
        message_id=email.message_id,
        recipient=email.recipient[:320],
        subject=email.subject[:300],
        last_error=None,
    )
    stats.sent += 1
    return "sent"


def run(
    db: Database,
    settings: Settings,
    stop: threading.Event,
    passes: Sequence[Callable[[], Any]],
) -> None:
    """Run `passes` in turn until `stop`: again at once while one found a full batch, else
    after SENDER_POLL_SECONDS."""
    while not stop.is_set():
        busy = False
        for one_pass in passes:
            try:
                stats = one_pass()
                busy = busy or stats.claimed >= settings.sender_batch
            except Exception:  # keep sending; the rows stay queued for the next pass
                log.exception("sender pass failed")
        if not busy:
            stop.wait(settings.sender_poll_seconds)
