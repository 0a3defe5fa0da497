"""`premium-billing` (also `flask --app wsgi`): the service's commands.

Errors exit non-zero with one clear line on stderr.
"""

from __future__ import annotations

import sys
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

from premium_billing.config import SettingsError


def _db():  # type: ignore[no-untyped-def]
    return current_app.extensions["premium_billing.db"]


def _settings():  # type: ignore[no-untyped-def]
    return current_app.config["SETTINGS"]


@click.group("db", help="Database schema.")
def db_group() -> None:
    pass


@db_group.command("upgrade", help="Apply the Alembic migrations (SQLite and PostgreSQL).")
@click.option("--revision", default="head", show_default=True)
@with_appcontext
def db_upgrade(revision: str) -> None:
    from premium_billing.db.migrate import upgrade

    upgrade(_settings().database_url, revision)
    click.echo(f"database at {revision}")


@click.group("keys", help="API keys.")
def keys_group() -> None:
    pass


@keys_group.command("create", help="Create an API key; the key is printed once, last line.")
@click.option(
    "--role", required=True, type=click.Choice(["admin", "billing", "finance", "auditor"])
)
@click.option("--name", required=True)
@with_appcontext
def keys_create(role: str, name: str) -> None:
    from premium_billing.actor import Actor, acting_as
    from premium_billing.errors import ServiceError
    from premium_billing.http.keys import create_key

    with _db().session() as session, acting_as(Actor(kind="cli", name="keys create")):
        try:
            created = create_key(session, role, name)
        except ServiceError as error:
            raise click.ClickException(error.message) from None
    click.echo(f"created {role} key {created.name!r} (id key_{created.id}); store it now:")
    click.echo(created.raw)


@click.group("users", help="Dashboard users (named logins).")
def users_group() -> None:
    pass


@users_group.command(
    "create", help="Create a dashboard user; the password from a prompt or --password-stdin."
)
@click.option(
    "--role", required=True, type=click.Choice(["admin", "billing", "finance", "auditor"])
)
@click.option("--name", required=True)
@click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
@with_appcontext
def users_create(role: str, name: str, password_stdin: bool) -> None:
    from premium_billing.actor import Actor, acting_as
    from premium_billing.dashboard.users import create_user
    from premium_billing.errors import ServiceError

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    with _db().session() as session, acting_as(Actor(kind="cli", name="users create")):
        try:
            user = create_user(session, role, name, password)
        except ServiceError as error:
            raise click.ClickException(error.message) from None
        click.echo(f"created {role} user {user.name!r} (id user_{user.id})")


def _when(instant: Any) -> str:
    return instant.strftime("%Y-%m-%dT%H:%M:%SZ") if instant is not None else "-"


@keys_group.command("list", help="List the API keys (never the keys themselves).")
@click.option("--active", "active_only", is_flag=True, help="Leave out revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@with_appcontext
def keys_list(active_only: bool, as_json: bool) -> None:
    import json

    from premium_billing.http.keys import list_keys

    with _db().session() as session:
        listing = list_keys(session, include_revoked=not active_only)
    if as_json:
        for key in listing:
            row = {**key.__dict__, "created_at": _when(key.created_at)}
            row["revoked_at"] = _when(key.revoked_at) if key.revoked_at else None
            click.echo(json.dumps(row))
        return
    header = ("id", "role", "status", "created", "revoked / expires", "prefix", "rotated", "name")
    rows = [
        (
            key.id,
            key.role,
            key.status,
            _when(key.created_at),
            _when(key.revoked_at),
            key.prefix + "…",
            (f"from {key.rotated_from}" if key.rotated_from else "")
            + (" " if key.rotated_from and key.rotated_to else "")
            + (f"to {key.rotated_to}" if key.rotated_to else "")
            or "-",
            key.name,
        )
        for key in listing
    ]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  ".join([*cells, str(row[-1])]))


@keys_group.command("revoke", help="Revoke an API key now (KEY_ID as in `keys list`: key_3).")
@click.argument("key_id")
@with_appcontext
def keys_revoke(key_id: str) -> None:
    from premium_billing.actor import Actor, acting_as
    from premium_billing.errors import ServiceError
    from premium_billing.http.keys import revoke_key

    try:
        with _db().session() as session, acting_as(Actor(kind="cli", name="keys revoke")):
            key = revoke_key(session, key_id)
    except ServiceError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"revoked {key.role} key {key.name!r} (id key_{key.id}) at {_when(key.revoked_at)}")


def _grace(text: str) -> Any:
    import re
    from datetime import timedelta

    found = re.fullmatch(r"(\d{1,6})([smhd]?)", text.strip())
    if found is None:
        raise click.ClickException(f"--grace: {text!r} is not a duration (0, 90s, 30m, 24h, 7d)")
    unit = {"s": "seconds", "": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    return timedelta(**{unit[found.group(2)]: int(found.group(1))})


@keys_group.command(
    "rotate",
    help="Replace an API key by a new one with its name and role, printed once, last line; "
    "the old key stops working at once, or after --grace.",
)
@click.argument("key_id")
@click.option(
    "--grace",
    default="0",
    show_default=True,
    help="How long the old key keeps working, so its users can switch (90s, 30m, 24h, 7d; "
    "at most 30 days).",
)
@with_appcontext
def keys_rotate(key_id: str, grace: str) -> None:
    from premium_billing.actor import Actor, acting_as
    from premium_billing.errors import ServiceError
    from premium_billing.http.keys import rotate_key

    try:
        with _db().session() as session, acting_as(Actor(kind="cli", name="keys rotate")):
            rotated = rotate_key(session, key_id, _grace(grace))
    except ServiceError as error:
        where = "--grace: " if error.field == "grace" else ""
        raise click.ClickException(f"{where}{error.message}") from None
    new = rotated.new
    ends = _when(rotated.old_revoked_at)
    click.echo(
        f"rotated {new.role} key {new.name!r}: key_{rotated.old_id} stops working at {ends}; "
        f"the new key (id key_{new.id}); store it now:"
    )
    click.echo(new.raw)


@click.command("serve", help="Serve the API with gunicorn.")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    import os

    os.execvp(
        sys.executable,
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(workers),
            # GET /metrics adds up the workers' counts: PROMETHEUS_MULTIPROC_DIR's hooks
            "--config",
            "python:premium_billing.gunicorn_config",
            "--access-logfile",
            "-",
            "wsgi:app",
        ],
    )


@click.command(
    "demo", help="Load the demo book and simulate the year to date through the jobs (once)."
)
@click.option(
    "--policyholders",
    "size",
    type=click.IntRange(8, 100000),
    default=300,
    show_default=True,
    envvar="DEMO_POLICYHOLDERS",
    help="How many policyholders the demo book has (DEMO_POLICYHOLDERS).",
)
@with_appcontext
def demo(size: int) -> None:
    from premium_billing.demo import load_demo

    for line in load_demo(current_app, size):
        click.echo(line)


def _as_of(value: str | None) -> Any:
    """--as-of as a business date (default: today there); a date that is not one, or lies
    outside the business date's window (unless ALLOW_TIME_TRAVEL), is one line and exit 1."""
    import re
    from datetime import date

    from premium_billing.clock import business_date, window_problem

    if value is None:
        return business_date(_settings().timezone)
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise click.ClickException(f"--as-of: {value!r} is not a date (YYYY-MM-DD)") from None
    problem = window_problem(_settings(), day, ahead=False)
    if problem is not None:
        raise click.ClickException(f"--as-of {value}: {problem}")
    return day


@click.command("run-job", help="Run one job for a business date (default: today there).")
@click.argument("name")
@click.option("--as-of", "as_of_text", default=None, help="Business date YYYY-MM-DD.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def run_job_command(name: str, as_of_text: str | None, quiet: bool) -> None:
    import json

    from tqdm import tqdm

    from premium_billing.actor import Actor, acting_as
    from premium_billing.errors import ServiceError
    from premium_billing.jobs.runner import JOBS, run_job

    if name not in JOBS:
        raise click.BadParameter(
            f"unknown job {name!r}; jobs: {', '.join(sorted(JOBS))}", param_hint="NAME"
        )
    as_of = _as_of(as_of_text)
    bar = tqdm(desc=name, unit=" invoices", disable=quiet or None, leave=False)
    try:
        with acting_as(Actor(kind="cli", name="run-job")):
            run = run_job(_db(), _settings(), name, as_of, trigger="cli", progress=bar.update)
    except ServiceError as error:
        where = f"--as-of {as_of.isoformat()}" if error.field == "as_of" else name
        raise click.ClickException(f"{where}: {error.message}") from None
    finally:
        bar.close()
    click.echo(
        json.dumps(
            {"run_id": f"run_{run.id}", "job": name, "status": run.status, **(run.stats or {})}
        )
    )


@click.command("scheduler", help="Run the scheduler (one active per database).")
@with_appcontext
def scheduler_command() -> None:
    import signal
    import threading

    from premium_billing.jobs.scheduler import run_scheduler

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run_scheduler(current_app._get_current_object(), stop)  # type: ignore[attr-defined]


@click.command(
    "drain-webhooks",
    help="Post queued Stripe events until stopped (WEBHOOK_PROCESSING=deferred, with "
    "WEBHOOK_DRAIN_IN_API=false so the API processes only store and answer).",
)
@with_appcontext
def drain_webhooks_command() -> None:
    import signal
    import threading

    from webhooks.drain import drain_forever

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    drain_forever(_db(), _settings(), stop)


@click.command(
    "send-notifications",
    help="Send queued emails over SMTP and outbound events to the registered endpoints, "
    "with retries, until stopped (--once: one pass of each, then exit).",
)
@click.option("--once", is_flag=True, help="One pass of each sender, print what it did.")
@click.option("--emails/--no-emails", default=True, help="Send emails (default on).")
@click.option("--events/--no-events", default=True, help="Send outbound events (default on).")
@with_appcontext
def send_notifications_command(once: bool, emails: bool, events: bool) -> None:
    import json
    import signal
    import threading

    from premium_billing.notifications.sender import run, send_pass
    from premium_billing.outbound.sender import deliver_pass

    db, settings = _db(), _settings()
    passes = {
        name: one_pass
        for name, one_pass, wanted in (
            ("emails", lambda: send_pass(db, settings), emails),
            ("events", lambda: deliver_pass(db, settings), events),
        )
        if wanted
    }
    if once:
        click.echo(json.dumps({name: p().as_dict() for name, p in passes.items()}))
        return
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    run(db, settings, stop, list(passes.values()))


@click.command("import-statement", help="Import a bank statement file (CSV, BAI2, CAMT.053).")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["csv", "bai2", "camt053"]), default=None)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def import_statement_command(file: str, fmt: str | None, quiet: bool) -> None:
    import json

    from tqdm import tqdm

    from premium_billing.actor import Actor, acting_as
    from premium_billing.errors import ServiceError
    from premium_billing.reconciliation.imports import import_statement

    try:
        handle = open(file, "rb")  # noqa: SIM115
    except OSError as error:
        raise click.ClickException(f"{file}: {error.strerror}") from None
    bar = tqdm(desc="import", unit=" lines", disable=quiet or None, leave=False)
    try:
        with handle, _db().session() as session, acting_as(Actor(kind="cli", name="import")):
            result = import_statement(
                session, _settings(), handle, format=fmt, filename=file, progress=bar.update
            )
    except ServiceError as error:
        raise click.ClickException(f"{file}: {error.message}") from None
    finally:
        bar.close()
    body = {"id": f"stm_{result.statement_id}", **result.as_dict()}
    body.pop("statement_id")
    click.echo(json.dumps(body))


@click.command("reconcile", help="Run the matcher over the suspense payments now.")
@click.option("--as-of", "as_of_text", default=None, help="Business date YYYY-MM-DD.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@with_appcontext
def reconcile_command(as_of_text: str | None, quiet: bool) -> None:
    import json

    from tqdm import tqdm

    from premium_billing.actor import Actor, acting_as
    from premium_billing.reconciliation.runs import run_reconciliation

    as_of = _as_of(as_of_text)
    bar = tqdm(desc="reconcile", unit=" payments", disable=quiet or None, leave=False)
    with _db().session() as session, acting_as(Actor(kind="cli", name="reconcile")):
        run = run_reconciliation(session, _settings(), as_of, trigger="cli", progress=bar.update)
    bar.close()
    click.echo(json.dumps({"id": f"recon_{run.id}", "status": run.status, **(run.stats or {})}))


def register_cli(app: Flask) -> None:
    app.cli.add_command(db_group)
    app.cli.add_command(keys_group)
    app.cli.add_command(users_group)
    app.cli.add_command(serve)
    app.cli.add_command(demo)
    app.cli.add_command(run_job_command)
    app.cli.add_command(scheduler_command)
    app.cli.add_command(drain_webhooks_command)
    app.cli.add_command(send_notifications_command)
    app.cli.add_command(import_statement_command)
    app.cli.add_command(reconcile_command)
    from premium_billing.cli_ledger import register as register_ledger_commands

    register_ledger_commands(app)


def _create_app(*_: Any) -> Flask:
    from premium_billing import create_app

    return create_app()


def main() -> None:
    from premium_billing.logging_setup import configure_logging

    configure_logging()
    cli = FlaskGroup(create_app=_create_app, add_default_commands=True, add_version_option=False)
    # `serve` needs no app: found on the group, it execs gunicorn before the app (and with it
    # prometheus_client, which must see the workers' PROMETHEUS_MULTIPROC_DIR) is imported.
    cli.add_command(serve)
    try:
        cli.main(prog_name="premium-billing")
    except SettingsError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(2)
