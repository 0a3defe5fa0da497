"""Refunds through Stripe: sending the refunds owed on Stripe payments (through the adapter,
each with an idempotency key stored before the call), and what Stripe's events say of them
(`refund.created`, `refund.updated`, `refund.failed`, and `charge.refunded`: the refunds of
the charge, listed from Stripe when the event does not carry them).

A refund is owed and committed first (`payments.refunds`); sending it is a step of its own:
on success Stripe's refund id is recorded (the refund stays `pending` until Stripe's
webhook says it succeeded); Stripe unavailable leaves it pending with its key, for the
`send_refunds` job to send again with the same key (a retry first asks Stripe whether the
refund exists, so a key Stripe has forgotten never refunds twice); Stripe refusing it
leaves it `failed`, owed, for finance to pay another way."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from premium_billing.clock import business_date
from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.errors import ServiceError
from premium_billing.payments import refunds
from premium_billing.payments.models import Payment, Refund
from premium_billing.payments.refunds import StripeWord
from premium_billing.stripe_billing.gateway import (
    GatewayError,
    GatewayRequestError,
    GatewayUnavailable,
    RefundResult,
)
from premium_billing.stripe_billing.models import StripeRequest
from premium_billing.stripe_billing.payments import gateway
from premium_billing.stripe_billing.rules import format_id, parse_id

log = logging.getLogger(__name__)

PURPOSE = "refund"


class RefundsUnavailable(Exception):
    """Stripe could not be asked about a charge's refunds now (an event to retry)."""


# ----------------------------------------------------------------------------- sending


def _waiting(session: Session, refund_id: int) -> Refund | None:
    refund = session.scalar(
        select(Refund).where(Refund.id == refund_id).execution_options(populate_existing=True)
    )
    if refund is None or refund.channel != "stripe" or refund.status != "pending":
        return None
    return None if refund.stripe_refund_id else refund


def _request(session: Session, target: str, amount: int) -> tuple[StripeRequest, bool]:
    """The stored request of this refund (a retry keeps its key, whatever its age), or a new
    one, committed before the call. Returns it and whether it is a retry."""
    pending = session.scalar(
        select(StripeRequest)
        .where(
            StripeRequest.purpose == PURPOSE,
            StripeRequest.target == target,
            StripeRequest.status == "pending",
        )
        .order_by(StripeRequest.id.desc())
        .limit(1)
    )
    if pending is not None:
        return pending, True
    request = StripeRequest(
        idempotency_key=f"{PURPOSE}-{target}-{uuid.uuid4().hex}",
        purpose=PURPOSE,
        target=target,
        amount=amount,
        status="pending",
    )
    session.add(request)
    session.commit()
    return request, False


def _already_made(settings: Settings, payment_intent: str, target: str) -> RefundResult | None:
    """The refund Stripe made for `target` (its metadata), if a lost answer hid it."""
    for found in gateway(settings).list_refunds(payment_intent=payment_intent):
        if found.metadata.get("refund_id") == target:
            return found
    return None


def send_one(session: Session, settings: Settings, refund_id: int) -> str:
    """Send one refund to Stripe (see the module doc); commits. Returns what happened:
    `sent`, `unavailable` (left pending), `refused` (left failed) or `skipped` (not a
    Stripe refund waiting to be sent)."""
    refund = _waiting(session, refund_id)
    if refund is None:
        session.rollback()
        return "skipped"
    payment = session.get(Payment, refund.payment_id)
    assert payment is not None
    payment_intent = payment.external_id or ""
    if not payment_intent.startswith("pi_"):
        refunds.fail_unsent(
            session,
            refund.id,
            "the payment has no Stripe PaymentIntent to refund: pay it by check or transfer",
        )
        session.commit()
        return "refused"
    target = format_id("refund", refund.id) or ""
    metadata = {
        "refund_id": target,
        "payment_id": format_id("payment", payment.id) or "",
        "policyholder_id": format_id("policyholder", refund.policyholder_id) or "",
    }
    amount = refund.amount
    try:
        request, retry = _request(session, target, amount)
        found = _already_made(settings, payment_intent, target) if retry else None
        result = found or gateway(settings).refund(
            payment_intent=payment_intent,
            amount=amount,
            metadata=metadata,
            idempotency_key=request.idempotency_key,
        )
    except GatewayUnavailable as error:
        session.rollback()
        _note(session, target, str(error), failed=False)
        log.warning(
            "stripe refund not sent", extra={"event": "refund_unsent", "refund_id": refund_id}
        )
        return "unavailable"
    except GatewayRequestError as error:
        session.rollback()
        _note(session, target, str(error), failed=True)
        refunds.fail_unsent(session, refund_id, f"Stripe refused the refund: {error}")
        session.commit()
        log.warning(
            "stripe refund refused", extra={"event": "refund_refused", "refund_id": refund_id}
        )
        return "refused"
    except (GatewayError, ServiceError) as error:  # e.g. Stripe not configured
        session.rollback()
        log.warning(
            "stripe refund not sent",
            extra={"event": "refund_unsent", "refund_id": refund_id, "why": str(error)[:200]},
        )
        return "unavailable"
    request.status = "succeeded"
    request.result_id = result.id
    request.error = None
    refunds.record_stripe_id(session, refund_id, result.id)
    session.commit()
    log.info(
        "stripe refund sent",
        extra={"event": "refund_sent", "refund_id": refund_id, "amount": amount},
    )
    return "sent"


def _note(session: Session, target: str, error: str, *, failed: bool) -> None:
    request = session.scalar(
        select(StripeRequest)
        .where(StripeRequest.purpose == PURPOSE, StripeRequest.target == target)
        .order_by(StripeRequest.id.desc())
        .limit(1)
    )
    if request is not None:
        request.error = error[:2000]
        if failed:
            request.status = "failed"
        session.commit()


def send_refunds(session: Session, settings: Settings, refund_ids: Sequence[int]) -> dict[str, int]:
    """Send each refund whose money came from Stripe (the handler of `REFUNDS_OWED`, after
    the commit that owed them). Returns how many were sent, unavailable, refused."""
    counts = {"sent": 0, "unavailable": 0, "refused": 0}
    for refund_id in sorted(set(refund_ids)):
        outcome = send_one(session, settings, refund_id)
        if outcome in counts:
            counts[outcome] += 1
    return counts


def resend_pending(db: Database, settings: Settings, limit: int = 500) -> dict[str, int]:
    """The `send_refunds` job: send again the Stripe refunds not sent yet (Stripe was
    unavailable, or the process died before sending)."""
    with db.session() as session:
        ids = list(
            session.scalars(
                select(Refund.id)
                .where(
                    Refund.channel == "stripe",
                    Refund.status == "pending",
                    Refund.stripe_refund_id.is_(None),
                )
                .order_by(Refund.id)
                .limit(limit)
            )
        )
        counts = send_refunds(session, settings, ids)
    return {"examined": len(ids), **counts}


# ----------------------------------------------------------------------------- events


def _ours(session: Session, obj: dict[str, Any]) -> int | None:
    """Our refund a Stripe refund object is (its metadata names it, or its id is known)."""
    metadata = obj.get("metadata") or {}
    named = parse_id("refund", metadata.get("refund_id")) if isinstance(metadata, dict) else None
    if named is not None and session.get(Refund, named) is not None:
        return named
    stripe_id = obj.get("id")
    if not isinstance(stripe_id, str):
        return None
    return session.scalar(select(Refund.id).where(Refund.stripe_refund_id == stripe_id))


def refund_event(session: Session, settings: Settings, obj: dict[str, Any]) -> bool:
    """refund.created / refund.updated / refund.failed: settle or reopen one of ours.
    Returns whether the refund is ours (a refund made in Stripe's Dashboard is not: its
    `charge.refunded` records it)."""
    refund_id = _ours(session, obj)
    if refund_id is None:
        return False
    word = StripeWord(
        stripe_refund_id=str(obj["id"]),
        status=str(obj.get("status") or ""),
        failure_reason=obj.get("failure_reason"),
    )
    refunds.stripe_outcome(session, settings, refund_id, word, business_date(settings.timezone))
    return True


def charge_refunds(session: Session, settings: Settings, charge: dict[str, Any]) -> int:
    """charge.refunded: our refunds of the charge that Stripe has not settled for us yet are
    brought to what Stripe says of them (from the event's `refunds` when it carries them,
    else listed from Stripe). Returns how many of ours were looked at."""
    payment_intent = charge.get("payment_intent")
    if isinstance(payment_intent, dict):
        payment_intent = payment_intent.get("id")
    if not isinstance(payment_intent, str):
        return 0
    waiting = list(
        session.scalars(
            select(Refund.id)
            .join(Payment, Payment.id == Refund.payment_id)
            .where(
                Payment.source == "stripe",
                Payment.external_id == payment_intent,
                Refund.channel == "stripe",
                Refund.status == "pending",
            )
        )
    )
    if not waiting:
        return 0
    carried = charge.get("refunds")
    if isinstance(carried, dict) and isinstance(carried.get("data"), list):
        objects = [o for o in carried["data"] if isinstance(o, dict)]
    else:
        try:
            listed = gateway(settings).list_refunds(charge=str(charge["id"]))
        except GatewayUnavailable as error:
            raise RefundsUnavailable(str(error)) from error
        except GatewayRequestError as error:
            log.warning(
                "charge refunds not listed",
                extra={"event": "refunds_not_listed", "why": str(error)[:200]},
            )
            return 0
        objects = [
            {"id": r.id, "status": r.status, "metadata": dict(r.metadata),
             "failure_reason": r.failure_reason}
            for r in listed
        ]  # fmt: skip
    seen = 0
    for obj in objects:
        if refund_event(session, settings, obj):
            seen += 1
    return seen
