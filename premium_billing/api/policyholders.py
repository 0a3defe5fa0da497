"""Policyholders: /api/v1/policyholders."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import select

from ..db.models import Policyholder
from ..services import policyholders as service
from ..services.accounts import account_balances
from . import schemas
from .auth import roles
from .ids import path_id
from .pagination import paginate
from .session import db_session
from .views import policyholder_out

blp = Blueprint(
    "policyholders", __name__, url_prefix="/api/v1/policyholders", description="Policyholders"
)


def _out(holder: Policyholder) -> dict[str, Any]:
    balance, credit = account_balances(db_session(), holder.id)
    return policyholder_out(holder, balance, credit)


@blp.route("")
class Policyholders(MethodView):
    @roles("billing")
    @blp.arguments(schemas.ListArgs, location="query")
    @blp.response(200, schemas.PolicyholderList)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List policyholders (cursor pagination, ascending id)."""
        session = db_session()
        rows, has_more = paginate(
            session, select(Policyholder), Policyholder.id, "policyholder", args
        )
        return {"data": [_out(h) for h in rows], "has_more": has_more}

    @roles("billing")
    @blp.arguments(schemas.PolicyholderCreate)
    @blp.response(201, schemas.PolicyholderOut)
    def post(self, data: dict[str, Any]) -> dict[str, Any]:
        """Create a policyholder."""
        return _out(service.create_policyholder(db_session(), data))


@blp.route("/<holder_id>")
class PolicyholderById(MethodView):
    @roles("billing")
    @blp.response(200, schemas.PolicyholderOut)
    def get(self, holder_id: str) -> dict[str, Any]:
        """A policyholder with `balance` (amount due) and `credit_balance`."""
        session = db_session()
        return _out(service.get_policyholder(session, path_id("policyholder", holder_id)))

    @roles("billing")
    @blp.arguments(schemas.PolicyholderPatch)
    @blp.response(200, schemas.PolicyholderOut)
    def patch(self, data: dict[str, Any], holder_id: str) -> dict[str, Any]:
        """Change some of a policyholder's fields."""
        number = path_id("policyholder", holder_id)
        return _out(service.update_policyholder(db_session(), number, data))
