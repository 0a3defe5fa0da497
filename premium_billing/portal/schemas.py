"""The portal link's answer."""

from __future__ import annotations

from marshmallow import Schema, fields


class PortalLinkOut(Schema):
    url = fields.String(
        metadata={"description": "The policyholder's portal: GET it in a browser (HTML)."}
    )
    expires_at = fields.DateTime(
        metadata={"description": "When the link stops working (UTC; PORTAL_TOKEN_DAYS)."}
    )
