"""Dashboard users (issue 15, item 2) on every backend: made by `users create` with an
argon2 hash, the password checked at login, failed logins throttled per name and per
address from the database, the session cookie's flags."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from premium_billing import create_app
from premium_billing.audit.models import AuditLog
from premium_billing.dashboard import users
from premium_billing.dashboard.models import DashboardUser, LoginFailure
from premium_billing.db.types import utcnow
from tests.integration.dashboard_helpers import PASSWORD, dashboard, make_user, token_of


def users_create(database_url: str, *args: str, password: str = PASSWORD) -> Any:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "premium_billing", "users", "create", *args, "--password-stdin"],
        input=password + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_users_create_stores_an_argon2_hash_and_refuses_bad_input(db, database_url):
    made = users_create(database_url, "--role", "auditor", "--name", "Ada Audit")
    assert made.returncode == 0, made.stderr
    assert "created auditor user 'Ada Audit'" in made.stdout
    with db.session() as s:
        user = s.scalar(select(DashboardUser))
        assert (user.name, user.role) == ("Ada Audit", "auditor")
        assert user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        audit = s.scalar(select(AuditLog).where(AuditLog.entity == "dashboard_users"))
        assert audit.actor_kind == "cli" and audit.after["password_hash"] == "[redacted]"

    again = users_create(database_url, "--role", "finance", "--name", "Ada Audit")
    assert again.returncode != 0
    assert again.stderr.strip().splitlines()[-1] == "Error: a user named 'Ada Audit' exists already"
    short = users_create(database_url, "--role", "finance", "--name", "Bo", password="short")
    assert short.returncode != 0
    assert "password: at least 12 characters" in short.stderr.strip().splitlines()[-1]
    role = users_create(database_url, "--role", "root", "--name", "Cy")
    assert role.returncode != 0 and "--role" in role.stderr
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(DashboardUser)) == 1


def test_login_checks_the_password_and_sets_a_guarded_session_cookie(live_server, db):
    make_user(db, "finance", "fay")
    client = dashboard(live_server.base_url)
    assert client.get("/dashboard/").headers["Location"].startswith("/dashboard/login")

    wrong = client.login("fay", PASSWORD + "x")
    assert wrong.status_code == 401 and "Wrong name or password." in wrong.text
    unknown = client.login("nobody", PASSWORD)
    assert unknown.status_code == 401 and "Wrong name or password." in unknown.text
    assert client.get("/dashboard/").status_code == 302  # still out

    good = client.login("fay", PASSWORD)
    assert good.status_code == 303 and good.headers["Location"] == "/dashboard/"
    cookie = good.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # served over plain HTTP (SESSION_COOKIE_SECURE=auto)
    home = client.get("/dashboard/")
    assert home.status_code == 200 and "fay (finance)" in home.text
    csp = home.headers["Content-Security-Policy"]
    assert "script-src" not in csp and "form-action 'self'" in csp
    with db.session() as s:
        # fay's failure cleared by her login; the unknown name's stays
        assert s.scalars(select(LoginFailure.name)).all() == ["nobody"]
        assert s.scalar(select(DashboardUser.last_login_at)) is not None

    out = client.post("/dashboard/logout", {"csrf_token": token_of(home.text)})
    assert out.status_code == 303
    assert client.get("/dashboard/").status_code == 302


def test_login_throttled_per_name_then_per_address(live_server, db, settings):
    make_user(db, "finance", "fay")
    client = dashboard(live_server.base_url)
    for _ in range(settings.login_max_failures):
        assert client.login("fay", "not the password").status_code == 401
    locked = client.login("fay", PASSWORD)  # the right password, but locked
    assert locked.status_code == 429
    assert "Too many failed logins: try again in 15 minutes." in locked.text
    assert client.get("/dashboard/").status_code == 302
    with db.session() as s:
        rows = s.execute(select(LoginFailure.name, LoginFailure.address)).all()
    assert rows == [("fay", "127.0.0.1")] * settings.login_max_failures

    # One address guessing many names: locked after LOGIN_MAX_FAILURES_PER_ADDRESS.
    others = settings.login_max_failures_per_address - settings.login_max_failures
    for i in range(others):
        assert client.login(f"guess{i}", "nope").status_code == 401
    make_user(db, "finance", "gus")
    assert client.login("gus", PASSWORD).status_code == 429  # the address is locked


def test_a_lock_ends_after_its_minutes_and_a_good_login_clears_the_name(db, settings):
    make_user(db, "finance", "fay")
    start = utcnow()
    with db.session() as s:
        for i in range(settings.login_max_failures):
            with pytest.raises(users.LoginRefused):
                users.log_in(
                    s, settings, "fay", "bad", "10.0.0.1", now=start + timedelta(seconds=i)
                )
        with pytest.raises(users.LoginThrottled) as throttled:
            users.log_in(s, settings, "fay", PASSWORD, "10.0.0.2", now=start + timedelta(minutes=1))
        assert throttled.value.minutes == settings.login_lock_minutes - 1
        later = start + timedelta(minutes=settings.login_lock_minutes, seconds=1)
        assert users.log_in(s, settings, "fay", PASSWORD, "10.0.0.2", now=later).name == "fay"
        assert s.scalar(select(func.count()).select_from(LoginFailure)) == 0


def test_session_cookie_secure_over_https(settings):
    app = create_app(settings.with_overrides(public_base_url="https://billing.example.com"))
    try:
        client = app.test_client()
        page = client.get("/dashboard/login")
        assert "Secure" in page.headers["Set-Cookie"]
    finally:
        app.extensions["premium_billing.db"].dispose()
