"""Domain events inside a transaction: a feature publishes what happened, and the handlers
that the app's bootstrap wired run in the same session, so a lower feature never imports a
higher one (invoicing does not import payments; the Stripe feature does not import
reconciliation)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy.orm import Session

HANDLERS = "premium_billing.handlers"

Handler = Callable[..., Any]
Handlers = Mapping[str, Sequence[Handler]]

# The events, with the facts each carries (keyword arguments of every handler).
INVOICES_ISSUED = "invoices_issued"  # invoice_ids, settings
PAYOUT_RECORDED = "payout_recorded"  # payout (a stripe_billing StripePayout), settings
# Refunds owed were committed (refund_ids, settings): those whose money came from Stripe
# are sent to Stripe. Published after the commit (the handler calls Stripe and commits).
REFUNDS_OWED = "refunds_owed"
# An endorsement cut the premium with nothing left to bill (installment_id, endorsement_id,
# on, settings): the cut is credited off what was billed, in the endorsement's transaction.
PREMIUM_CUT = "premium_cut"
# The posting engine wrote a batch (every money movement, whatever the road), in its
# transaction: allocations [(payment_id, invoice_id, amount)] (negative: taken back),
# invoice_ids whose amounts or status changed, payment_ids the batch locked, on (the
# business date), reason (the batch's), settings. Handlers must be set-based (a
# reconciliation batch moves thousands).
MONEY_MOVED = "money_moved"
# A payment attempt failed (a Stripe PaymentIntent's payment_failed, an autopay decline),
# in the transaction that records it: failures = [{"invoice_ids": [...], "policyholder_id",
# "amount", "currency", "reason", "attempt_id" (unique per attempt: the dedupe key)}],
# on, settings.
PAYMENT_FAILED = "payment_failed"
# Refunds reached the payer (Stripe said succeeded, or a person marked one paid), in that
# transaction: refund_ids, on, settings.
REFUNDS_SENT = "refunds_sent"
# Collections (set-based): policies changed delinquency state, in the transaction that
# changed them: transitions = [{"policy_id", "from_state", "to_state", "on",
# "oldest_unpaid_due_date", "amount_overdue", "currency"}], settings. States: active,
# past_due, in_grace, lapsed, reinstated.
DELINQUENCY_CHANGED = "delinquency_changed"
# Collections took steps (each once: a unique row), in that transaction: steps =
# [{"step_id", "policy_id", "installment_id", "step", "on", "oldest_unpaid_due_date",
# "amount_overdue", "currency", "grace_ends_on", "lapse_on"}], settings. Steps:
# reminder (with "offset" days), grace_notice, final_notice, lapse, reinstatement,
# autopay_retry, late_fee. The job's batches on PostgreSQL publish both as sequences that
# read their rows only when iterated (collections.assess_pg.Written: thousands a batch);
# their steps also name their rows by a `source` SELECT, for an INSERT … SELECT.
COLLECTION_STEPS_TAKEN = "collection_steps_taken"


class HandlersMissing(RuntimeError):
    """The session came from a Database made without the app's bootstrap."""


def publish(session: Session, event: str, **facts: Any) -> list[Any]:
    """Run each handler wired for `event` in this session's transaction; their results."""
    handlers: Handlers | None = session.info.get(HANDLERS)
    if handlers is None:
        raise HandlersMissing(
            f"no handlers for {event!r}: make the database with premium_billing.bootstrap"
        )
    return [handler(session, **facts) for handler in handlers.get(event, ())]
