"""Premium billing service for pet and other insurers."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

from premium_billing.config import Settings

__all__ = ["create_app", "Settings"]


def create_app(settings: Settings | dict[str, Any] | None = None) -> Flask:
    """The Flask app. `settings`: a Settings, a dict of overrides, or None (environment)."""
    from premium_billing import bootstrap
    from premium_billing.cli import register_cli

    if settings is None:
        settings = Settings.from_env()
    elif isinstance(settings, dict):
        settings = Settings.from_env().with_overrides(**settings).validate()
    app = Flask(__name__)
    app.config.update(
        SETTINGS=settings,
        SECRET_KEY=settings.secret_key,
        API_TITLE="Premium billing",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/api/v1",
        OPENAPI_JSON_PATH="openapi.json",
        JSON_SORT_KEYS=False,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions["premium_billing.db"] = bootstrap.database(settings.database_url)
    bootstrap.mount(app)
    register_cli(app)
    logging.getLogger("premium_billing").setLevel(settings.log_level.upper())
    return app
