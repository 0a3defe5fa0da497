"""`make run`'s Checkout round trips: a few demo policyholders pay an open invoice as a payer
would, through the API and the fake Stripe, over real HTTP.

    python -m devtools.demo_checkouts --base http://127.0.0.1:8000 \
        --stripe http://127.0.0.1:12111 --key-file var/demo-admin-key --count 3

For each of the first policyholders with an open invoice and none overdue: `POST
/invoices/{id}/checkout`, the fake's Checkout page submitted (card 4242…), then the signed
`payment_intent.succeeded` webhook posts it (inline, or through the drain) and the invoice
reads paid. Once: a holder who already paid through Stripe counts as done, so a second
`make run` pays nothing more.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date
from pathlib import Path
from typing import Any

import requests

from devtools.fake_stripe.checkout_page import submit_pay_form

LOOK_AT = 40  # policyholders looked at, ph_1 onwards


def _get(session: requests.Session, url: str, **params: Any) -> Any:
    response = session.get(url, params=params, timeout=30)
    response.raise_for_status()
    return response.json()


def round_trips(base: str, stripe: str, key: str, count: int, timeout: float) -> list[str]:
    api = f"{base.rstrip('/')}/api/v1"
    http = requests.Session()
    http.headers["Authorization"] = f"Bearer {key}"
    lines: list[str] = []
    done = 0
    today = date.today().isoformat()
    for n in range(1, LOOK_AT + 1):
        if done >= count:
            break
        holder = f"ph_{n}"
        payments = _get(http, f"{api}/payments", policyholder_id=holder, limit=500)["data"]
        if any(p["source"] == "stripe" for p in payments):
            done += 1
            continue
        policies = _get(http, f"{api}/policies", policyholder_id=holder, status="active")
        if not policies["data"]:
            continue
        invoices = _get(http, f"{api}/invoices", policyholder_id=holder, status="open")["data"]
        if not invoices or any(i["due_date"] < today for i in invoices):
            continue  # nothing to pay, or a late payer: the prompt ones pay online
        invoice = min(invoices, key=lambda i: (i["due_date"], i["id"]))
        began = time.monotonic()
        checkout = http.post(f"{api}/invoices/{invoice['id']}/checkout", timeout=30)
        checkout.raise_for_status()
        status = submit_pay_form(stripe, checkout.json()["session_id"])
        if status != 303:
            lines.append(f"Checkout for {invoice['number']}: the fake Stripe answered {status}")
            continue
        while time.monotonic() - began < timeout:
            if _get(http, f"{api}/invoices/{invoice['id']}")["status"] == "paid":
                break
            time.sleep(0.2)
        else:
            lines.append(f"Checkout for {invoice['number']}: not paid after {timeout:.0f} s")
            continue
        done += 1
        lines.append(
            f"Checkout: {invoice['number']} paid through the fake Stripe and its signed "
            f"webhook ({time.monotonic() - began:.1f} s)"
        )
    if not lines and done:
        lines.append(f"Checkout: {done} demo payment(s) through Stripe already made")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the API's base URL")
    parser.add_argument("--stripe", required=True, help="the fake Stripe's base URL")
    parser.add_argument("--key-file", type=Path, required=True, help="an admin API key's file")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per payment")
    args = parser.parse_args(argv)
    key = args.key_file.read_text().strip()
    try:
        for line in round_trips(args.base, args.stripe, key, args.count, args.timeout):
            print(line, flush=True)
    except requests.RequestException as error:
        print(f"Checkout round trips: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
