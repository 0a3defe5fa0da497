"""Policyholders: create, read, change."""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from premium_billing.db.errors import violated
from premium_billing.errors import Conflict, NotFound
from premium_billing.policies.models import Policyholder

EDITABLE = ("name", "email", "phone", "address", "external_ref", "locale")


def get_policyholder(session: Session, policyholder_id: int) -> Policyholder:
    holder = session.get(Policyholder, policyholder_id)
    if holder is None:
        raise NotFound("policyholder not found")
    return holder


def _save(session: Session, holder: Policyholder) -> Policyholder:
    try:
        session.flush()
    except IntegrityError as error:
        session.rollback()
        if violated(error, "uq_policyholders_external_ref", "policyholders.external_ref"):
            raise Conflict("external_ref is already used", field="external_ref") from None
        raise
    session.commit()
    return holder


def create_policyholder(session: Session, data: dict[str, Any]) -> Policyholder:
    holder = Policyholder(**{k: data.get(k) for k in EDITABLE if k in data})
    session.add(holder)
    return _save(session, holder)


def update_policyholder(
    session: Session, policyholder_id: int, data: dict[str, Any]
) -> Policyholder:
    holder = get_policyholder(session, policyholder_id)
    for key in EDITABLE:
        if key in data:
            setattr(holder, key, data[key])
    return _save(session, holder)
