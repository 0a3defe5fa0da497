"""Stripe webhook signatures: `Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256>` over
"<t>.<raw body>", verified exactly as Stripe specifies."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time

import pytest
import stripe

from premium_billing.stripe_billing.gateway import (
    WebhookSignatureError,
    sign_webhook,
    verify_webhook,
)

SECRET = "whsec_test_current_secret"
OLD_SECRET = "whsec_test_previous_secret"
NOW = 1_760_000_000
EVENT = {
    "id": "evt_1Test",
    "object": "event",
    "api_version": "2026-10-28.endive",
    "created": NOW,
    "type": "checkout.session.completed",
    "livemode": False,
    "data": {
        "object": {
            "id": "cs_test_1",
            "object": "checkout.session",
            "metadata": {"invoice_id": "inv_123"},
            "amount_total": 48000,
        }
    },
}
# Stripe sends pretty-printed JSON; the signature covers these exact bytes.
PAYLOAD = json.dumps(EVENT, indent=2).encode("utf-8")


def reason_of(excinfo: pytest.ExceptionInfo[WebhookSignatureError]) -> str:
    return excinfo.value.reason


def test_signed_payload_verifies_and_returns_the_event() -> None:
    header = sign_webhook(PAYLOAD, SECRET, NOW)
    assert verify_webhook(PAYLOAD, header, [SECRET], now=NOW) == EVENT


def test_header_format_and_hmac_match_stripes_scheme() -> None:
    header = sign_webhook(PAYLOAD, SECRET, NOW)
    match = re.fullmatch(r"t=(\d+),v1=([0-9a-f]{64})", header)
    assert match is not None
    assert int(match.group(1)) == NOW
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + PAYLOAD, hashlib.sha256)
    assert match.group(2) == expected.hexdigest()


def test_forged_signature_is_rejected() -> None:
    header = sign_webhook(PAYLOAD, SECRET, NOW)
    last = header[-1]
    forged = header[:-1] + ("0" if last != "0" else "1")
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify_webhook(PAYLOAD, forged, [SECRET], now=NOW)
    assert reason_of(excinfo) == "signature_mismatch"


def test_tampered_body_is_rejected() -> None:
    header = sign_webhook(PAYLOAD, SECRET, NOW)
    tampered = PAYLOAD.replace(b"48000", b"48001")
    assert tampered != PAYLOAD
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify_webhook(tampered, header, [SECRET], now=NOW)
    assert reason_of(excinfo) == "signature_mismatch"


def test_wrong_secret_is_rejected() -> None:
    header = sign_webhook(PAYLOAD, "whsec_someone_else", NOW)
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify_webhook(PAYLOAD, header, [SECRET], now=NOW)
    assert reason_of(excinfo) == "signature_mismatch"


def test_stale_timestamp_beyond_tolerance_is_rejected() -> None:
    header = sign_webhook(PAYLOAD, SECRET, NOW - 301)
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify_webhook(PAYLOAD, header, [SECRET], tolerance=300, now=NOW)
    assert reason_of(excinfo) == "timestamp_outside_tolerance"


def test_timestamp_just_inside_tolerance_is_accepted() -> None:
    header = sign_webhook(PAYLOAD, SECRET, NOW - 299)
    assert verify_webhook(PAYLOAD, header, [SECRET], tolerance=300, now=NOW)["id"] == "evt_1Test"


def test_timestamp_far_in_the_future_is_rejected() -> None:
    header = sign_webhook(PAYLOAD, SECRET, NOW + 301)
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify_webhook(PAYLOAD, header, [SECRET], tolerance=300, now=NOW)
    assert reason_of(excinfo) == "timestamp_outside_tolerance"


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_is_rejected(header: str | None) -> None:
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify_webhook(PAYLOAD, header, [SECRET], now=NOW)
    assert reason_of(excinfo) == "missing_header"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("garbage", "malformed_header"),
        (f"t=notanumber,v1={'0' * 64}", "malformed_header"),
        (f"v1={'0' * 64}", "malformed_header"),
        (f"t={NOW},v0={'0' * 64}", "no_signatures"),
    ],
)
def test_malformed_header_is_rejected(header: str, reason: str) -> None:
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify_webhook(PAYLOAD, header, [SECRET], now=NOW)
    assert reason_of(excinfo) == reason


def test_reserialised_json_body_is_rejected() -> None:
    header = sign_webhook(PAYLOAD, SECRET, NOW)
    reserialised = json.dumps(json.loads(PAYLOAD)).encode("utf-8")
    assert reserialised != PAYLOAD and json.loads(reserialised) == EVENT
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify_webhook(reserialised, header, [SECRET], now=NOW)
    assert reason_of(excinfo) == "signature_mismatch"


def test_rotation_second_of_two_secrets_verifies() -> None:
    header = sign_webhook(PAYLOAD, OLD_SECRET, NOW)
    assert verify_webhook(PAYLOAD, header, [SECRET, OLD_SECRET], now=NOW) == EVENT
    with pytest.raises(WebhookSignatureError):
        verify_webhook(PAYLOAD, header, [SECRET], now=NOW)


def test_any_of_several_v1_signatures_may_match() -> None:
    good = sign_webhook(PAYLOAD, SECRET, NOW).split(",")[1]
    header = f"t={NOW},v1={'f' * 64},{good}"
    assert verify_webhook(PAYLOAD, header, [SECRET], now=NOW) == EVENT


def test_signed_body_that_is_not_a_json_object_is_rejected() -> None:
    body = b"[1, 2, 3]"
    header = sign_webhook(body, SECRET, NOW)
    with pytest.raises(WebhookSignatureError) as excinfo:
        verify_webhook(body, header, [SECRET], now=NOW)
    assert reason_of(excinfo) == "invalid_payload"


def test_no_configured_secret_is_a_configuration_error() -> None:
    header = sign_webhook(PAYLOAD, SECRET, NOW)
    with pytest.raises(ValueError):
        verify_webhook(PAYLOAD, header, ["", "  "], now=NOW)


def test_sign_webhook_header_verifies_with_the_stripe_librarys_own_verifier() -> None:
    now = int(time.time())
    header = sign_webhook(PAYLOAD, SECRET, now)
    assert stripe.WebhookSignature.verify_header(PAYLOAD, header, SECRET, tolerance=300) is True
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(PAYLOAD, header, OLD_SECRET, tolerance=300)


def test_stripe_librarys_signature_header_verifies_with_ours() -> None:
    header = stripe.WebhookSignature.generate_signature_header(
        PAYLOAD.decode("utf-8"), SECRET, timestamp=NOW
    )
    assert header == sign_webhook(PAYLOAD, SECRET, NOW)
    assert verify_webhook(PAYLOAD, header, [SECRET], now=NOW) == EVENT
