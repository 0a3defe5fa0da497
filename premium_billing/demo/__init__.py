"""`make run`'s demo: a realistic book and the year to date, simulated through the real jobs.

`load_demo` loads `book.build(size)` (a few hundred policyholders with cats and dogs, every
billing plan, USD and EUR, fees) and `simulate.simulate`s the year to date with time
travel on; then the trial balance, a Pay now link, a portal link and an admin API key.
Once: a second run on the same database finds the book and adds nothing.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask
from sqlalchemy import func, select

from premium_billing.clock import business_date
from premium_billing.config import PROJECT_ROOT
from premium_billing.demo.book import FIRST_NUMBER, build, year_start
from premium_billing.demo.simulate import simulate
from premium_billing.http.keys import create_key, find_key
from premium_billing.policies import policyholders
from premium_billing.policies import service as policies
from premium_billing.policies.models import Policy
from premium_billing.reports.trial_balance import summary_lines

KEY_FILE = PROJECT_ROOT / "var" / "demo-admin-key"
LOGIN_FILE = PROJECT_ROOT / "var" / "demo-dashboard-login"  # "name password"
DEFAULT_SIZE = 300  # policyholders (`premium-billing demo --policyholders N`)
FIRST_POLICY = f"PET-{FIRST_NUMBER}"


def load_demo(app: Flask, size: int = DEFAULT_SIZE) -> Iterator[str]:
    """Load and simulate the book when absent; yield what a newcomer needs to know."""
    # The demo drives every job to the dates of the year to date: time travel on.
    began = time.perf_counter()
    settings = dataclasses.replace(app.config["SETTINGS"], allow_time_travel=True)
    db = app.extensions["premium_billing.db"]
    today = business_date(settings.timezone)
    start = year_start(today)
    with db.session() as session:
        raw = KEY_FILE.read_text().strip() if KEY_FILE.exists() else ""
        # The file may hold the key of another database (DATABASE_URL changed): reuse it
        # only when this database knows it.
        if not raw or find_key(session, raw) is None:
            raw = create_key(session, "admin", "demo-admin").raw
            KEY_FILE.parent.mkdir(parents=True, exist_ok=True)
            KEY_FILE.write_text(raw + "\n")
            KEY_FILE.chmod(0o600)
        loaded = session.scalar(select(Policy.id).where(Policy.policy_number == FIRST_POLICY))
    if loaded is None:
        holders = build(size, today)
        book = {}
        with db.session() as session:
            for holder in holders:
                row = policyholders.create_policyholder(session, holder.data)
                policies.create_policy(session, {**holder.policy, "policyholder_id": row.id})
                book[row.id] = holder
        plans = sorted({h.policy["billing_plan"] for h in holders})
        currencies = sorted({h.policy["currency"] for h in holders})
        pets = sum(len(h.pets) for h in holders)
        yield (
            f"demo data loaded: {len(holders)} policyholders, {pets} cats and dogs, plans "
            f"{', '.join(plans)}, in {', '.join(currencies)} "
            f"({time.perf_counter() - began:.1f} s)"
        )
        yield from simulate(db, settings, book, start, today)
        yield f"the demo took {time.perf_counter() - began:.0f} s on this machine"
    else:
        with db.session() as session:
            count = session.scalar(select(func.count(Policy.id)))
        yield f"demo data already loaded ({count} policies): nothing added"
    with db.session() as session:
        yield from summary_lines(session, today)
    yield from _pay_now(app)
    yield from _portal_link(app, settings)
    yield from _dashboard_login(app, settings)
    yield f"admin API key (also in {KEY_FILE.relative_to(PROJECT_ROOT)}): {raw}"
    yield (
        f'try: curl -s -H "Authorization: Bearer {raw}" {settings.public_base_url}/api/v1/policies'
    )


def _portal_link(app: Flask, settings: Any) -> Iterator[str]:
    """One policyholder's portal: one with paid history and an invoice still open."""
    from premium_billing.invoicing.models import Invoice
    from premium_billing.invoicing.rules import PAYABLE_STATUSES
    from premium_billing.policies.models import Policyholder
    from premium_billing.portal_links import portal_url

    db = app.extensions["premium_billing.db"]
    with db.session() as session:
        paid = select(Invoice.policyholder_id).where(Invoice.status == "paid")
        row = session.execute(
            select(Policyholder.id, Policyholder.name)
            .join(Invoice, Invoice.policyholder_id == Policyholder.id)
            .where(Invoice.status.in_(PAYABLE_STATUSES), Policyholder.id.in_(paid))
            .order_by(Policyholder.id)
            .limit(1)
        ).first()
    if row is None:
        return
    url, expires = portal_url(settings, row[0])
    yield f"portal of {row[1]} (good until {expires:%Y-%m-%d}): {url}"


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


def _dashboard_login(app: Flask, settings: Any) -> Iterator[str]:
    """A finance user of the dashboard and its password, kept in LOGIN_FILE (once per
    database), when the dashboard is there (its `dashboard_users` table in our metadata)."""
    import importlib
    import secrets

    from sqlalchemy import text

    from premium_billing.models import metadata

    if "dashboard_users" not in metadata.tables:  # the dashboard's tables are not ours yet
        return
    users = importlib.import_module("premium_billing.dashboard.users")
    db = app.extensions["premium_billing.db"]
    kept = LOGIN_FILE.read_text().split() if LOGIN_FILE.exists() else []
    with db.session() as session:
        rows = session.execute(text("SELECT name, password_hash FROM dashboard_users"))
        hashes = {name: password_hash for name, password_hash in rows}
        # The file may hold another database's login (DATABASE_URL changed): reuse it only
        # when this database's user of that name has that password.
        if len(kept) != 2 or not _verifies(users, hashes.get(kept[0]), kept[1]):
            name = next(f"demo-finance-{n}" for n in range(1, len(hashes) + 2)
                        if f"demo-finance-{n}" not in hashes)  # fmt: skip
            kept = [name, secrets.token_urlsafe(12)]
            users.create_user(session, "finance", *kept)
            LOGIN_FILE.parent.mkdir(parents=True, exist_ok=True)
            LOGIN_FILE.write_text(" ".join(kept) + "\n")
            LOGIN_FILE.chmod(0o600)
    yield (
        f"dashboard: {settings.public_base_url}/dashboard/  login {kept[0]}, password {kept[1]} "
        f"(also in {LOGIN_FILE.relative_to(PROJECT_ROOT)})"
    )


def _verifies(users: Any, password_hash: str | None, password: str) -> bool:
    if password_hash is None:
        return False
    try:
        return bool(users.hasher().verify(password_hash, password))
    except Exception:  # argon2's VerifyMismatchError, InvalidHashError …
        return False
