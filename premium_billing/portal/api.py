"""`POST /api/v1/policyholders/{id}/portal-link`: the back office makes a policyholder's
portal link (the same signed, expiring link every email carries)."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint

from premium_billing.http.auth import roles
from premium_billing.http.ids import path_id
from premium_billing.http.session import db_session
from premium_billing.portal.links import portal_link
from premium_billing.portal.schemas import PortalLinkOut

blp = Blueprint(
    "portal_links",
    __name__,
    url_prefix="/api/v1/policyholders",
    description="The policyholder portal's links",
)


@blp.route("/<holder_id>/portal-link")
class PortalLink(MethodView):
    @roles("billing")
    @blp.response(200, PortalLinkOut)
    def post(self, holder_id: str) -> dict[str, Any]:
        """A signed link to the policyholder's portal page, expiring after PORTAL_TOKEN_DAYS
        (30): `{url, expires_at}`. Each call makes a new link; earlier ones stay good until
        they expire."""
        settings = current_app.config["SETTINGS"]
        url, expires_at = portal_link(db_session(), settings, path_id("policyholder", holder_id))
        return {"url": url, "expires_at": expires_at}
