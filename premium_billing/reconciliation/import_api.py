"""Bank statements: POST /api/v1/bank-statements (multipart `file`, optional `format`).

The upload may be up to BANK_STATEMENT_MAX_LENGTH bytes (the API's other bodies:
MAX_CONTENT_LENGTH); Werkzeug's form parser spools the file to disk as it arrives and the
importer reads it from there, so a large statement is never held in memory."""

from __future__ import annotations

from typing import Any

from flask import current_app
from flask.views import MethodView
from flask_smorest import Blueprint
from flask_smorest.fields import Upload
from marshmallow import Schema, fields, validate

from premium_billing.http.auth import roles
from premium_billing.http.ids import PublicId
from premium_billing.http.limits import body_limit
from premium_billing.http.schemas import String
from premium_billing.http.session import db_session
from premium_billing.reconciliation.bank_files import FORMATS
from premium_billing.reconciliation.imports import import_statement

blp = Blueprint(
    "bank_statements",
    __name__,
    url_prefix="/api/v1/bank-statements",
    description="Bank statement imports (CSV, BAI2, CAMT.053)",
)


class StatementFile(Schema):
    file = Upload(required=True, metadata={"description": "The statement file."})


class StatementForm(Schema):
    format = String(
        load_default=None,
        validate=validate.OneOf(FORMATS),
        metadata={"description": "csv, bai2 or camt053; detected from the file when absent."},
    )


class StatementImportOut(Schema):
    id = PublicId("statement")
    lines = fields.Integer(metadata={"description": "Lines in the file."})
    payments_created = fields.Integer()
    duplicates_skipped = fields.Integer(
        metadata={"description": "Lines already imported (by an earlier file or this one)."}
    )
    returns_reversed = fields.Integer(
        metadata={"description": "Returned items whose payment was found and reversed."}
    )
    payout_deposits = fields.Integer(metadata={"description": "Stripe payout deposits."})


@blp.route("")
class BankStatements(MethodView):
    @roles("finance")
    @body_limit("bank_statement_max_length")  # BANK_STATEMENT_MAX_LENGTH, not 2 MB
    @blp.arguments(StatementForm, location="form")
    @blp.arguments(StatementFile, location="files")
    @blp.response(201, StatementImportOut)
    def post(self, form: dict[str, Any], files: dict[str, Any]) -> dict[str, Any]:
        """Import a bank statement: credits become payments (source `bank_statement`, the
        bank reference as `external_id`), returned items reverse the payment they return.
        The same file, or the same line, imported twice creates nothing new. A malformed
        file is refused whole (422 naming the line or element); nothing is imported."""
        upload = files["file"]
        result = import_statement(
            db_session(),
            current_app.config["SETTINGS"],
            upload.stream,
            format=form.get("format"),
            filename=upload.filename,
        )
        return {
            "id": result.statement_id,
            "lines": result.lines,
            "payments_created": result.payments_created,
            "duplicates_skipped": result.duplicates_skipped,
            "returns_reversed": result.returns_reversed,
            "payout_deposits": result.payout_deposits,
        }
