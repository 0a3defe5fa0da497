"""Demo data for `make run`: an admin key and a few policyholders and policies, made once."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

from flask import Flask
from sqlalchemy import select

from premium_billing.clock import business_date
from premium_billing.config import PROJECT_ROOT
from premium_billing.http.keys import create_key, find_key
from premium_billing.policies import policyholders
from premium_billing.policies import service as policies
from premium_billing.policies.models import Policy
from premium_billing.policies.rules.schedule import add_months
from premium_billing.reports.trial_balance import summary_lines

KEY_FILE = PROJECT_ROOT / "var" / "demo-admin-key"


def _pet(name: str, species: str, breed: str, born: str, premium: int) -> dict[str, Any]:
    return {
        "description": f"{name} ({breed})",
        "annual_premium": premium,
        "pet": {
            "name": name,
            "species": species,
            "breed": breed,
            "date_of_birth": date.fromisoformat(born),
        },
    }


def load_demo(app: Flask) -> Iterator[str]:
    """Create the demo rows when absent; yield what a newcomer needs to know."""
    settings = app.config["SETTINGS"]
    db = app.extensions["premium_billing.db"]
    today = business_date(settings.timezone)
    with db.session() as session:
        raw = KEY_FILE.read_text().strip() if KEY_FILE.exists() else ""
        # The file may hold the key of another database (DATABASE_URL changed): reuse it
        # only when this database knows it.
        if not raw or find_key(session, raw) is None:
            raw = create_key(session, "admin", "demo-admin").raw
            KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
            KEY_FILE.write_text(raw + "\n")
            KEY_FILE.chmod(0o600)
        if session.scalar(select(Policy).where(Policy.policy_number == "PET-000001")) is None:
            yield from _load_rows(session, today)
        else:
            yield "demo data already loaded"
    yield from _run_jobs(app, today)
    yield from _bank_statement(app, today)
    with db.session() as session:
        yield from summary_lines(session, today)
    yield from _pay_now(app)
    yield f"admin API key (also in {KEY_FILE.relative_to(PROJECT_ROOT)}): {raw}"
    yield (
        f'try: curl -s -H "Authorization: Bearer {raw}" {settings.public_base_url}/api/v1/policies'
    )


def _pay_now(app: Flask) -> Iterator[str]:
    """A Stripe Checkout link for the oldest open invoice (the fake Stripe under make run)."""
    from premium_billing.invoicing.models import Invoice
    from premium_billing.invoicing.rules import PAYABLE_STATUSES
    from premium_billing.money import format_major
    from premium_billing.stripe_billing.gateway import GatewayError
    from premium_billing.stripe_billing.payments import start_checkout

    settings = app.config["SETTINGS"]
    if not settings.stripe_secret_key:
        yield "Pay now: set STRIPE_SECRET_KEY (make run starts a fake Stripe) to get a link"
        return
    db = app.extensions["premium_billing.db"]
    with db.session() as session:
        invoice = session.scalar(
            select(Invoice)
            .where(Invoice.status.in_(PAYABLE_STATUSES), Invoice.currency == "USD")
            .order_by(Invoice.due_date, Invoice.id)
            .limit(1)
        )
        if invoice is None:
            return
        try:
            checkout = start_checkout(session, settings, invoice.id)
        except GatewayError as error:
            yield f"Pay now: Stripe is not reachable ({error})"
            return
        yield (
            f"Pay now ({invoice.number}, "
            f"{format_major(invoice.amount_due, invoice.currency)} {invoice.currency}): "
            f"{checkout.url}"
        )


DEMO_STATEMENT = "demo-bank-statement.csv"


def _bank_statement(app: Flask, today: date) -> Iterator[str]:
    """A day's bank file (once): one transfer quoting an invoice's RF reference, one with a
    typo in the invoice number, one from an unknown payer; then a reconciliation run."""
    import io

    from premium_billing.actor import Actor, acting_as
    from premium_billing.invoicing.models import Invoice
    from premium_billing.invoicing.rules import payment_reference
    from premium_billing.jobs.runner import run_job
    from premium_billing.money import format_major
    from premium_billing.policies.models import Policyholder
    from premium_billing.reconciliation.imports import import_statement
    from premium_billing.reconciliation.models import BankStatement

    settings = app.config["SETTINGS"]
    db = app.extensions["premium_billing.db"]
    with db.session() as session:
        if session.scalar(select(BankStatement.id).where(BankStatement.filename == DEMO_STATEMENT)):
            return
        rows = session.execute(
            select(Invoice, Policyholder.name)
            .join(Policyholder, Policyholder.id == Invoice.policyholder_id)
            .where(Invoice.status == "open", Invoice.currency == "USD")
            .order_by(Invoice.due_date, Invoice.id)
            .limit(2)
        ).all()
        lines = ["date,amount,currency,payer_name,reference,bank_reference"]
        for n, (invoice, name) in enumerate(rows):
            text = (
                f"Premium {payment_reference(invoice.number)}"
                if n == 0
                else f"Invoice {invoice.number[:-2]}{invoice.number[-1]}{invoice.number[-2]}"
            )
            lines.append(
                f"{today.isoformat()},{format_major(invoice.amount_due, 'USD')},USD,"
                f"{name},{text},DEMO-{today.isoformat()}-{n + 1}"
            )
        lines.append(f"{today.isoformat()},12.34,USD,J DOE,,DEMO-{today.isoformat()}-9")
        with acting_as(Actor(kind="cli", name="demo")):
            result = import_statement(
                session,
                settings,
                io.BytesIO("\n".join(lines).encode()),
                format="csv",
                filename=DEMO_STATEMENT,
            )
    yield f"bank statement {DEMO_STATEMENT}: {result.as_dict()}"
    with acting_as(Actor(kind="cli", name="demo")):
        run = run_job(db, settings, "reconcile", today, trigger="demo")
    yield f"reconciliation run: {run.stats}"


def _run_jobs(app: Flask, today: date) -> Iterator[str]:
    """Today's jobs, as the scheduler would run them (idempotent: a re-run adds nothing)."""
    from premium_billing.actor import Actor, acting_as
    from premium_billing.jobs.runner import run_job

    settings = app.config["SETTINGS"]
    db = app.extensions["premium_billing.db"]
    with acting_as(Actor(kind="cli", name="demo")):
        for job in ("renewals", "issue_invoices"):
            run = run_job(db, settings, job, today, trigger="demo")
            yield f"job {job} for {today.isoformat()}: {run.stats}"


def _load_rows(session: Any, today: date) -> Iterator[str]:
    ann = policyholders.create_policyholder(
        session,
        {
            "name": "Ann Lee",
            "email": "ann.lee@example.com",
            "phone": "+1 617 555 0100",
            "address": {"line1": "1 Beacon St", "city": "Boston", "country": "US"},
        },
    )
    raj = policyholders.create_policyholder(
        session, {"name": "Raj Patel", "email": "raj.patel@example.com"}
    )
    eva = policyholders.create_policyholder(
        session, {"name": "Eva Schmidt", "email": "eva.schmidt@example.com"}
    )
    started = add_months(today.replace(day=min(today.day, 28)), -3)
    rex = policies.create_policy(
        session,
        {
            "policyholder_id": ann.id,
            "policy_number": "PET-000001",
            "product": "pet",
            "currency": "USD",
            "effective_date": started,
            "term_months": 12,
            "billing_plan": "monthly",
            "lines": [_pet("Rex", "dog", "Labrador", "2021-03-02", 48000)],
            "fees": {"policy_fee": 0, "installment_fee": 200},
            "autopay": False,
            "auto_renew": True,
        },
    )
    policies.create_policy(
        session,
        {
            "policyholder_id": raj.id,
            "policy_number": "PET-000002",
            "product": "pet",
            "currency": "USD",
            "effective_date": add_months(today, -12) + timedelta(days=20),
            "term_months": 12,
            "billing_plan": "annual",
            "lines": [
                _pet("Milo", "cat", "Siamese", "2019-06-10", 26000),
                _pet("Bella", "dog", "Beagle", "2020-01-20", 39000),
            ],
            "fees": {"policy_fee": 1500, "installment_fee": 0},
            "autopay": False,
            "auto_renew": True,
        },
    )
    policies.create_policy(
        session,
        {
            "policyholder_id": eva.id,
            "policy_number": "GEN-000003",
            "product": "general",
            "currency": "EUR",
            "effective_date": started,
            "term_months": 12,
            "billing_plan": "quarterly",
            "lines": [{"description": "Household contents", "annual_premium": 36000}],
            "fees": {"policy_fee": 0, "installment_fee": 0},
            "autopay": False,
            "auto_renew": False,
        },
    )
    # A second pet joins Ann's policy mid-term: an endorsement.
    policies.endorse(
        session,
        rex.id,
        add_months(started, 2),
        [
            _pet("Rex", "dog", "Labrador", "2021-03-02", 48000),
            _pet("Luna", "cat", "Maine Coon", "2023-05-01", 24000),
        ],
        "second pet added",
    )
    yield "demo data loaded: 3 policyholders, 3 policies (one endorsed)"
    yield from _load_payments(session, today, eva.id)


def _load_payments(session: Any, today: date, eva_id: int) -> Iterator[str]:
    """Payments: a known payer's (her credit balance, applied to her next invoices) and an
    unidentified bank transfer in suspense; then the trial balance."""
    from premium_billing.payments.posting import create_payment

    create_payment(
        session,
        {
            "amount": 50000,
            "currency": "EUR",
            "method": "bank_transfer",
            "received_on": today,
            "reference": "GEN-000003 prepayment",
            "policyholder_id": eva_id,
            "external_id": "demo-eva-1",
        },
    )
    create_payment(
        session,
        {
            "amount": 4200,
            "currency": "USD",
            "method": "check",
            "received_on": today,
            "reference": "no reference",
            "external_id": "demo-check-1",
        },
    )
    yield "demo payments: EUR 500.00 credit for policyholder 3, USD 42.00 in suspense"
