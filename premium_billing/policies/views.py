"""ORM rows → the dicts the response schemas dump (public shapes of API.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import selectinload

from premium_billing.policies.models import (
    Installment,
    Policy,
    Policyholder,
    PolicyTerm,
    PremiumLine,
)
from premium_billing.policies.service import current_term, invoiced


def line_out(line: PremiumLine) -> dict[str, Any]:
    pet = None
    if line.pet_name is not None:
        pet = {
            "name": line.pet_name,
            "species": line.pet_species,
            "breed": line.pet_breed,
            "date_of_birth": line.pet_date_of_birth.isoformat() if line.pet_date_of_birth else None,
        }
    return {"description": line.description, "annual_premium": line.annual_premium, "pet": pet}


def installment_out(
    installment: Installment, term_number: int, invoice_id: int | None
) -> dict[str, Any]:
    status = installment.status
    if invoice_id is not None:
        status = "invoiced"
    return {
        "number": installment.number,
        "term": term_number,
        "kind": installment.kind,
        "due_date": installment.due_date,
        "amount": installment.amount,
        "fee": installment.fee,
        "status": status,
        "invoice_id": invoice_id,
    }


def schedule_out(policy: Policy) -> list[dict[str, Any]]:
    everything = [i for term in policy.terms for i in term.installments]
    billed = invoiced(everything)
    rows = [
        installment_out(installment, term.term_number, billed.get(installment.id))
        for term in policy.terms
        for installment in term.installments
    ]
    rows.sort(key=lambda r: (r["term"], r["due_date"], r["number"]))
    return rows


def policy_loads() -> tuple[Any, ...]:
    """Loader options for a page of policies: their terms, lines, installments and the
    installments' invoices in a few queries for the whole page (not a few per policy)."""
    terms = selectinload(Policy.terms)
    return (
        terms.selectinload(PolicyTerm.lines),
        terms.selectinload(PolicyTerm.installments).selectinload(Installment.invoice),
    )


def policy_out(policy: Policy) -> dict[str, Any]:
    term = current_term(policy)
    return {
        "id": policy.id,
        "policyholder_id": policy.policyholder_id,
        "policy_number": policy.policy_number,
        "product": policy.product,
        "currency": policy.currency,
        "effective_date": policy.effective_date,
        "expiration_date": policy.expiration_date,
        "term_months": policy.term_months,
        "billing_plan": policy.billing_plan,
        "lines": [line_out(line) for line in term.lines],
        "fees": {"policy_fee": policy.policy_fee, "installment_fee": policy.installment_fee},
        "autopay": policy.autopay,
        "auto_renew": policy.auto_renew,
        "status": policy.status,
        "annual_premium": term.annual_premium,
        "renewal_lines": policy.renewal_lines,
        "schedule": schedule_out(policy),
        "created_at": policy.created_at,
    }


def policyholder_out(holder: Policyholder, balance: int = 0, credit: int = 0) -> dict[str, Any]:
    return {
        "id": holder.id,
        "name": holder.name,
        "email": holder.email,
        "phone": holder.phone,
        "address": holder.address,
        "external_ref": holder.external_ref,
        "locale": holder.locale,
        "balance": balance,
        "credit_balance": credit,
        "created_at": holder.created_at,
    }
