"""Portal links: a token names its policyholder; altered, foreign or expired ones read as
None."""

from __future__ import annotations

import time

from itsdangerous import URLSafeTimedSerializer

from premium_billing.config import Settings
from premium_billing.portal_links import make_token, portal_url, read_token


def test_a_token_names_its_policyholder() -> None:
    settings = Settings(secret_key="k1")
    assert read_token(settings, make_token(settings, 42)) == 42
    url, expires = portal_url(settings, 7)
    assert url.startswith(settings.public_base_url + "/portal/")
    assert read_token(settings, url.rsplit("/", 1)[1]) == 7
    assert (expires.timestamp() - time.time()) > 29 * 24 * 3600


def test_altered_foreign_and_expired_tokens_are_none() -> None:
    settings = Settings(secret_key="k1")
    token = make_token(settings, 42)
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert read_token(settings, altered) is None
    assert read_token(Settings(secret_key="other"), token) is None
    assert read_token(settings, "not-a-token") is None
    assert read_token(settings, "") is None
    other_salt = URLSafeTimedSerializer("k1", salt="elsewhere").dumps({"ph": 42})
    assert read_token(settings, other_salt) is None
    expired = Settings(secret_key="k1", portal_token_days=0)
    time.sleep(1.1)
    assert read_token(expired, token) is None
