"""Marshmallow schemas shared by the API blueprints."""

from __future__ import annotations

from typing import Any

from babel import Locale, UnknownLocaleError
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from premium_billing.http.dates import BusinessDate
from premium_billing.http.ids import PublicId
from premium_billing.http.schemas import Currency, Email, ListArgs, ListMeta, Money, String
from premium_billing.policies.models import Policy, Policyholder, PremiumLine
from premium_billing.policies.rules.schedule import BILLING_PLANS, MONTHS_PER_INSTALLMENT, term_end

MAX_TERM_MONTHS = 120
LOCALE_HELP = "How amounts and dates are written to them (emails): a CLDR locale, e.g. en_GB."


def _locale(value: str) -> None:
    """A locale babel knows, written language_TERRITORY (en_US, de_DE) or language (fr)."""
    try:
        known = str(Locale.parse(value)) == value
    except (UnknownLocaleError, ValueError, TypeError):
        known = False
    if not known:
        raise ValidationError("Not a known locale (language_TERRITORY, e.g. en_US).")


class AddressSchema(Schema):
    # Stored as JSON: no column width, but no unbounded text either.
    line1 = String(load_default=None, max_length=200)
    line2 = String(load_default=None, max_length=200)
    city = String(load_default=None, max_length=100)
    region = String(load_default=None, max_length=100)
    postal_code = String(load_default=None, max_length=20)
    country = String(load_default=None, min_length=2, max_length=2)


class PolicyholderCreate(Schema):
    name = String(required=True, column=Policyholder.name, min_length=1)
    email = Email(required=True, column=Policyholder.email)
    phone = String(load_default=None, column=Policyholder.phone)
    address = fields.Nested(AddressSchema, load_default=None)
    external_ref = String(load_default=None, column=Policyholder.external_ref)
    locale = String(
        load_default="en_US",
        column=Policyholder.locale,
        validate=_locale,
        metadata={"description": LOCALE_HELP},
    )


class PolicyholderPatch(Schema):
    name = String(column=Policyholder.name, min_length=1)
    email = Email(column=Policyholder.email)
    phone = String(allow_none=True, column=Policyholder.phone)
    address = fields.Nested(AddressSchema, allow_none=True)
    external_ref = String(allow_none=True, column=Policyholder.external_ref)
    locale = String(
        column=Policyholder.locale, validate=_locale, metadata={"description": LOCALE_HELP}
    )


class PolicyholderOut(Schema):
    id = PublicId("policyholder")
    name = fields.String()
    email = fields.String()
    phone = fields.String(allow_none=True)
    address = fields.Dict(allow_none=True)
    external_ref = fields.String(allow_none=True)
    locale = fields.String(metadata={"description": LOCALE_HELP})
    balance = fields.Integer(metadata={"description": "Amount due, minor units."})
    credit_balance = fields.Integer(metadata={"description": "Unapplied credit, minor units."})
    created_at = fields.DateTime(format="iso")


class PolicyholderList(ListMeta):
    data = fields.List(fields.Nested(PolicyholderOut))


class PetSchema(Schema):
    name = String(required=True, column=PremiumLine.pet_name, min_length=1)
    species = String(required=True, column=PremiumLine.pet_species, min_length=1)
    breed = String(load_default=None, column=PremiumLine.pet_breed)
    date_of_birth = fields.Date(load_default=None)


class PremiumLineIn(Schema):
    description = String(required=True, column=PremiumLine.description, min_length=1)
    annual_premium = Money(required=True)
    pet = fields.Nested(PetSchema, load_default=None)


class PremiumLineOut(Schema):
    description = fields.String()
    annual_premium = fields.Integer()
    pet = fields.Dict(allow_none=True)


class FeesSchema(Schema):
    policy_fee = Money(load_default=0)
    installment_fee = Money(load_default=0)


class LinesSchema(Schema):
    lines = fields.List(
        fields.Nested(PremiumLineIn), required=True, validate=validate.Length(min=1, max=50)
    )


class PolicyCreate(LinesSchema):
    policyholder_id = PublicId("policyholder", required=True)
    policy_number = String(required=True, column=Policy.policy_number, min_length=1)
    product = String(load_default="pet", validate=validate.OneOf(["pet", "general"]))
    currency = Currency(required=True)
    effective_date = BusinessDate(ahead=True, required=True)
    term_months = fields.Integer(
        strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_TERM_MONTHS)
    )
    expiration_date = fields.Date(load_default=None)
    billing_plan = String(required=True, validate=validate.OneOf(BILLING_PLANS))
    fees = fields.Nested(FeesSchema, load_default=lambda: {"policy_fee": 0, "installment_fee": 0})
    autopay = fields.Boolean(load_default=False)
    auto_renew = fields.Boolean(load_default=True)

    @validates_schema
    def _check(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("product") == "pet":
            for i, line in enumerate(data.get("lines") or []):
                if not line.get("pet"):
                    raise ValidationError(
                        "A pet policy needs the pet's details on every line.", f"lines.{i}.pet"
                    )
        effective, expiration = data.get("effective_date"), data.get("expiration_date")
        months = data.get("term_months")
        if effective and expiration:
            if expiration <= effective:
                raise ValidationError("Must be after effective_date.", "expiration_date")
            whole = (expiration.year - effective.year) * 12 + expiration.month - effective.month
            if whole < 1 or term_end(effective, whole) != expiration:
                raise ValidationError(
                    "Must be a whole number of months after effective_date.", "expiration_date"
                )
            if whole > MAX_TERM_MONTHS:  # as term_months: not a schedule of 95,000 installments
                raise ValidationError(
                    f"Must be at most {MAX_TERM_MONTHS} months after effective_date.",
                    "expiration_date",
                )
            if months is not None and months != whole:
                raise ValidationError("Does not match term_months.", "expiration_date")
            data["term_months"] = whole
        elif months is None:
            data["term_months"] = 12
        plan = data.get("billing_plan")
        if plan in MONTHS_PER_INSTALLMENT and data["term_months"] % MONTHS_PER_INSTALLMENT[plan]:
            raise ValidationError(
                f"A {plan} plan needs a term that is a multiple of "
                f"{MONTHS_PER_INSTALLMENT[plan]} months.",
                "billing_plan",
            )


class InstallmentOut(Schema):
    number = fields.Integer()
    term = fields.Integer(metadata={"description": "Term number (1 = first term)."})
    kind = fields.String()
    due_date = fields.Date()
    amount = fields.Integer()
    fee = fields.Integer()
    status = fields.String()
    invoice_id = PublicId("invoice", allow_none=True)


class ScheduleOut(Schema):
    data = fields.List(fields.Nested(InstallmentOut))


class PolicyOut(Schema):
    id = PublicId("policy")
    policyholder_id = PublicId("policyholder")
    policy_number = fields.String()
    product = fields.String()
    currency = fields.String()
    effective_date = fields.Date()
    expiration_date = fields.Date()
    term_months = fields.Integer()
    billing_plan = fields.String()
    lines = fields.List(fields.Nested(PremiumLineOut))
    fees = fields.Nested(FeesSchema)
    autopay = fields.Boolean()
    auto_renew = fields.Boolean()
    status = fields.String()
    annual_premium = fields.Integer()
    renewal_lines = fields.List(fields.Nested(PremiumLineOut), allow_none=True)
    schedule = fields.List(fields.Nested(InstallmentOut))
    created_at = fields.DateTime(format="iso")


class PolicyList(ListMeta):
    data = fields.List(fields.Nested(PolicyOut))


class PolicyFilters(ListArgs):
    policyholder_id = PublicId("policyholder", load_default=None)
    status = String(
        load_default=None,
        validate=validate.OneOf(
            ["active", "past_due", "in_grace", "lapsed", "cancelled", "expired", "renewed"]
        ),
    )
    policy_number = String(load_default=None, column=Policy.policy_number)


class EndorsementIn(LinesSchema):
    effective_date = BusinessDate(ahead=True, required=True)
    reason = String(load_default=None, max_length=2000)


class EndorsementOut(Schema):
    delta_amount = fields.Integer()
    days_remaining = fields.Integer()
    term_days = fields.Integer()
    effective_date = fields.Date()
    annual_premium = fields.Integer()
    schedule = fields.List(fields.Nested(InstallmentOut))


class CancellationIn(Schema):
    effective_date = BusinessDate(ahead=True, required=True)
    reason = String(load_default=None, max_length=2000)
    method = String(load_default="pro_rata", validate=validate.OneOf(["pro_rata", "short_rate"]))


class CancellationOut(Schema):
    policy_id = PublicId("policy")
    effective_date = fields.Date()
    method = fields.String()
    earned_premium = fields.Integer()
    refund_due = fields.Integer()
    balance_due = fields.Integer()
    status = fields.String()


class ReinstatementIn(Schema):
    effective_date = BusinessDate(ahead=True, required=True)


class RenewalOut(Schema):
    policy_id = PublicId("policy")
    annual_premium = fields.Integer()
    lines = fields.List(fields.Nested(PremiumLineOut))
