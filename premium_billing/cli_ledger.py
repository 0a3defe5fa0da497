"""`premium-billing ledger check` and `premium-billing audit verify`.

Both exit 1 naming what is wrong (one line per difference for the ledger, the first bad row
for the audit trail), 0 when everything agrees.
"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from premium_billing.actor import Actor, acting_as


def _db():  # type: ignore[no-untyped-def]
    return current_app.extensions["premium_billing.db"]


@click.group("ledger", help="The double-entry journal.")
def ledger_group() -> None:
    pass


@ledger_group.command(
    "check", help="Recompute every invoice, payment and account balance from the journal."
)
@with_appcontext
def ledger_check() -> None:
    from premium_billing.reports.check import check

    with acting_as(Actor(kind="cli", name="ledger check")), _db().session() as session:
        problems = check(session)
    if problems:
        for line in problems:
            click.echo(f"ledger: {line}", err=True)
        click.echo(
            f"error: {len(problems)} difference(s) between the ledger and the books", err=True
        )
        raise SystemExit(1)
    click.echo("ledger check: every entry balances and every balance follows from the journal")


@click.group("audit", help="The hash-chained audit trail.")
def audit_group() -> None:
    pass


@audit_group.command("verify", help="Check the audit trail's hash chain; name the first bad row.")
@with_appcontext
def audit_verify() -> None:
    from premium_billing.audit.trail import verify

    with acting_as(Actor(kind="cli", name="audit verify")), _db().session() as session:
        result = verify(session)
    if result.problem is not None:
        where = (
            f"row id {result.problem.row_id} (seq {result.problem.seq})"
            if result.problem.row_id is not None
            else f"after seq {result.problem.seq - 1}"
        )
        click.echo(f"error: audit trail broken at {where}: {result.problem.reason}", err=True)
        raise SystemExit(1)
    click.echo(f"audit trail intact: {result.rows} row(s)")


def register(app: Flask) -> None:
    app.cli.add_command(ledger_group)
    app.cli.add_command(audit_group)
