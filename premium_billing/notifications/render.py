"""A notice as an email: subject, plain text and HTML from the Jinja templates in
premium_billing/templates/email/, amounts and dates written for the currency and the
policyholder's locale (babel), the pets at risk named. What the templates read is loaded
for a whole batch of notices in a few queries (`load_context`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from email.header import Header
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr, formatdate
from functools import cache
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.numbers import format_currency
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from premium_billing.config import Settings
from premium_billing.db.bulk import any_of
from premium_billing.invoicing.models import Invoice
from premium_billing.invoicing.rules import format_reference, payment_reference
from premium_billing.money import exponent
from premium_billing.policies.models import Policy, Policyholder, PolicyTerm, PremiumLine
from premium_billing.portal_links import portal_url

from .rules import cover_at_risk, message_id

DEFAULT_LOCALE = "en_US"
SMTP_LINES = compat32.clone(linesep="\r\n")  # what goes over the wire

SUBJECTS = {
    "invoice_issued": "Your invoice {invoice_number}: {total} due {due_date}",
    "payment_receipt": "Payment received: {amount}, thank you",
    "payment_failed": "Your payment of {amount} did not go through",
    "reminder": "Reminder: {amount_overdue} {reminder_when}",
    "grace_notice": "{Cover} is in its grace period: please pay {amount_overdue}",
    "final_notice": "Final notice: {cover} lapses on {lapse_on}",
    "lapse": "{Cover} has lapsed",
    "reinstatement": "{Cover} is reinstated",
    "refund_sent": "Your refund of {amount} is on its way",
}


@cache
def environment() -> Environment:
    return Environment(
        loader=PackageLoader("premium_billing", "templates/email"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def locale_of(code: str | None) -> Locale:
    """The policyholder's locale; an unknown one reads as en_US."""
    try:
        return Locale.parse(code or DEFAULT_LOCALE)
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse(DEFAULT_LOCALE)


def money(amount: int | None, currency: str, locale: Locale) -> str:
    """48000 USD in en_US → '$480.00'; in de_DE → '480,00 $'."""
    value = Decimal(amount or 0).scaleb(-exponent(currency))
    return str(format_currency(value, currency, locale=locale))


def day(value: date | str | None, locale: Locale) -> str:
    """A date in the locale's long form: 'March 12, 2027' (en_US), '12 March 2027' (en_GB)."""
    if value is None:
        return ""
    if isinstance(value, str):
        value = date.fromisoformat(value)
    return str(format_date(value, format="long", locale=locale))


@dataclass(frozen=True)
class Holder:
    name: str
    email: str
    locale: str


@dataclass(frozen=True)
class PolicyFacts:
    number: str
    currency: str
    pets: tuple[str, ...]


@dataclass(frozen=True)
class Context:
    """What a batch of notices reads: holders, policies with their pets, invoices."""

    holders: Mapping[int, Holder]
    policies: Mapping[int, PolicyFacts]
    invoices: Mapping[int, Any]


def load_context(session: Session, rows: Sequence[Any]) -> Context:
    """The rows a batch of notices needs, a query per table."""
    holder_ids = sorted({r.policyholder_id for r in rows})
    policy_ids = sorted({r.policy_id for r in rows if r.policy_id is not None})
    invoice_ids = sorted({r.invoice_id for r in rows if r.invoice_id is not None})
    holders = {
        h.id: Holder(h.name, h.email, h.locale)
        for h in session.execute(
            select(
                Policyholder.id, Policyholder.name, Policyholder.email, Policyholder.locale
            ).where(any_of(session, Policyholder.id, holder_ids))
        )
    }
    invoices = {}
    if invoice_ids:
        invoices = {
            i.id: i
            for i in session.execute(
                select(
                    Invoice.id,
                    Invoice.number,
                    Invoice.policy_id,
                    Invoice.currency,
                    Invoice.total,
                    Invoice.amount_due,
                    Invoice.due_date,
                ).where(any_of(session, Invoice.id, invoice_ids))
            )
        }
    policy_ids = sorted(set(policy_ids) | {i.policy_id for i in invoices.values()})
    policies: dict[int, PolicyFacts] = {}
    if policy_ids:
        pets: dict[int, tuple[int, list[str]]] = {}
        for line in session.execute(
            select(PolicyTerm.policy_id, PolicyTerm.term_number, PremiumLine.pet_name)
            .join(PremiumLine, PremiumLine.term_id == PolicyTerm.id)
            .where(any_of(session, PolicyTerm.policy_id, policy_ids))
            .order_by(PolicyTerm.policy_id, PolicyTerm.term_number, PremiumLine.position)
        ):
            term, names = pets.get(line.policy_id, (line.term_number, []))
            if line.term_number != term:  # the latest term's pets
                term, names = line.term_number, []
            if line.pet_name:
                names.append(line.pet_name)
            pets[line.policy_id] = (term, names)
        policies = {
            p.id: PolicyFacts(p.policy_number, p.currency, tuple(pets.get(p.id, (0, []))[1]))
            for p in session.execute(
                select(Policy.id, Policy.policy_number, Policy.currency).where(
                    any_of(session, Policy.id, policy_ids)
                )
            )
        }
    return Context(holders, policies, invoices)


@dataclass(frozen=True)
class Email:
    recipient: str  # the To header: name and address
    address: str  # the envelope's recipient
    subject: str
    text: str
    html: str
    message_id: str

    def message(self, sender: str) -> bytes:
        """The MIME message: text/plain with a text/html alternative, UTF-8 (the compat32
        classes: a tenth of the header handling of email.message.EmailMessage)."""
        message = MIMEMultipart("alternative")
        message["From"] = sender
        message["To"] = self.recipient
        # Non-ASCII: RFC 2047 words, folded by the generator knowing the header's name.
        message["Subject"] = (
            self.subject
            if self.subject.isascii()
            else Header(self.subject, "utf-8", header_name="Subject")  # type: ignore[assignment]
        )
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = self.message_id
        message.attach(MIMEText(self.text, "plain", "utf-8"))
        message.attach(MIMEText(self.html, "html", "utf-8"))
        return message.as_bytes(policy=SMTP_LINES)


def variables(row: Any, context: Context, settings: Settings) -> dict[str, Any]:
    """The template variables of one notice: its facts written for the reader."""
    holder = context.holders[row.policyholder_id]
    locale = locale_of(holder.locale)
    facts: dict[str, Any] = dict(row.facts or {})
    invoice = context.invoices.get(row.invoice_id) if row.invoice_id else None
    policy_id = row.policy_id or (invoice.policy_id if invoice is not None else None)
    policy = context.policies.get(policy_id) if policy_id else None
    currency = facts.get("currency") or (
        invoice.currency if invoice is not None else policy.currency if policy else "USD"
    )
    cover = cover_at_risk(policy.pets if policy else ())
    url, _expires = portal_url(settings, row.policyholder_id)
    found: dict[str, Any] = {
        "kind": row.kind,
        "name": holder.name,
        "cover": cover,
        "Cover": cover[:1].upper() + cover[1:],
        "pets": list(policy.pets) if policy else [],
        "policy_number": policy.number if policy else None,
        "pay_url": url,
        "currency": currency,
    }
    for key in ("amount", "amount_overdue", "payment_amount"):
        if key in facts:
            found[key] = money(facts[key], currency, locale)
    for key in (
        "on", "received_on", "paid_on", "oldest_unpaid_due_date", "grace_ends_on", "lapse_on",
    ):  # fmt: skip
        if facts.get(key):
            found[key] = day(facts[key], locale)
    found["invoices"] = facts.get("invoices") or []
    found["reason"] = facts.get("reason")
    found["channel"] = facts.get("channel")
    offset = facts.get("offset")
    found["offset"] = offset
    found["reminder_when"] = (
        f"due on {found.get('oldest_unpaid_due_date', '')}"
        if offset is not None and offset < 0
        else f"overdue since {found.get('oldest_unpaid_due_date', '')}"
    )
    if invoice is not None:
        found.update(
            invoice_number=invoice.number,
            total=money(invoice.total, invoice.currency, locale),
            amount_due=money(invoice.amount_due, invoice.currency, locale),
            paid=invoice.amount_due == 0,  # paid (or credited) before this was sent
            due_date=day(invoice.due_date, locale),
            reference=format_reference(payment_reference(invoice.number)),
        )
    return found


def render(row: Any, context: Context, settings: Settings) -> Email:
    """The email of one notice (its row: id, kind, policyholder_id, policy_id, invoice_id,
    facts)."""
    found = variables(row, context, settings)
    env = environment()
    text = env.get_template(f"{row.kind}.txt").render(found)
    html = env.get_template(f"{row.kind}.html").render(found)
    subject = SUBJECTS[row.kind].format_map(_Blank(found))
    holder = context.holders[row.policyholder_id]
    domain = settings.mail_from.rpartition("@")[2] or "localhost"
    return Email(
        recipient=formataddr((holder.name, holder.email), charset="utf-8"),
        address=holder.email,
        subject=subject,
        text=text,
        html=html,
        message_id=message_id(row.id, domain),
    )


class _Blank(dict):  # type: ignore[type-arg]
    """format_map's variables, a missing one written as nothing."""

    def __missing__(self, key: str) -> str:
        return ""
