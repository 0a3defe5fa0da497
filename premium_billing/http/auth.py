"""Bearer API keys with roles. Authentication runs before every /api/v1 request;
each view names the roles that may call it."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from flask import Flask, Response, g, request

from premium_billing.actor import Actor, reset_actor, set_actor
from premium_billing.http.keys import ROLES, find_key
from premium_billing.http.problems import problem
from premium_billing.http.session import db_session

F = TypeVar("F", bound=Callable[..., Any])

# Documentation, not data: the OpenAPI document and its browsable page need no key.
PUBLIC_PATHS = {"/api/v1/openapi.json", "/api/v1/docs"}
PUBLIC_PREFIXES = ("/api/v1/docs/",)


def authenticate() -> Response | None:
    path = request.path
    if not path.startswith("/api/v1/") or path in PUBLIC_PATHS:
        return None
    if path.startswith(PUBLIC_PREFIXES):
        return None
    raw = bearer_token()
    if raw is None:
        return unauthorized("Missing bearer API key in the Authorization header.")
    key = find_key(db_session(), raw)
    if key is None:
        return unauthorized("The API key is not valid.")
    g.api_key_id = key.id
    g.api_key_name = key.name
    g.api_key_role = key.role
    g.actor_token = set_actor(
        Actor(kind="api_key", id=f"key_{key.id}", name=key.name, request_id=g.request_id)
    )
    return None


def bearer_token() -> str | None:
    """The token of the request's `Authorization: Bearer <token>` header, or None."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    return raw.strip()


def _reset_actor(_exc: BaseException | None) -> None:
    token = g.pop("actor_token", None)
    if token is not None:
        reset_actor(token)


def unauthorized(detail: str) -> Response:
    """A 401 problem asking for a bearer credential."""
    response = problem(401, detail)
    response.headers["WWW-Authenticate"] = 'Bearer realm="premium-billing"'
    return response


def roles(*allowed: str) -> Callable[[F], F]:
    """Allow these roles (admin always; auditor for reads) to call the view. The roles are
    kept on the view (`allowed_roles`, for the tests) and shown in the OpenAPI document: a
    line of the operation's description and `x-roles`."""
    unknown = set(allowed) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def decorator(view: F) -> F:
        reads = view.__name__.upper() in ("GET", "HEAD")
        documented = [
            r for r in ROLES if r in allowed or r == "admin" or (reads and r == "auditor")
        ]

        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            role = g.get("api_key_role")
            permitted = set(allowed) | {"admin"}
            if request.method in ("GET", "HEAD"):
                permitted.add("auditor")
            if role not in permitted:
                return problem(403, f"The {role!r} role may not do this.")
            return view(*args, **kwargs)

        described = inspect.cleandoc(view.__doc__ or "")
        line = f"Roles: {', '.join(documented)}."
        wrapper.__doc__ = f"{described}\n\n{line}" if described else line
        apidoc = dict(getattr(wrapper, "_apidoc", {}))
        manual = dict(apidoc.get("manual_doc", {}))
        manual["x-roles"] = documented
        apidoc["manual_doc"] = manual
        wrapper._apidoc = apidoc  # type: ignore[attr-defined]
        wrapper.allowed_roles = frozenset(documented)  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorator


def register_auth(app: Flask) -> None:
    app.before_request(authenticate)
    app.teardown_request(_reset_actor)
