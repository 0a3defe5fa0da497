"""`python -m devtools.fake_stripe --port 12111 --webhook-url http://127.0.0.1:8000/webhooks/stripe
--webhook-secret whsec_...`: the fake Stripe of `make run`, until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import signal
import threading

from .server import FakeStripe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.fake_stripe", description="A fake Stripe for the demo."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", default=None)
    parser.add_argument("--webhook-secret", required=True)
    parser.add_argument("--secret-key", default="sk_test_fake")
    args = parser.parse_args(argv)
    fake = FakeStripe(
        args.webhook_url, args.webhook_secret, args.secret_key, host=args.host, port=args.port
    ).start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    print(f"fake Stripe listening on {fake.base_url} (webhooks to {args.webhook_url})", flush=True)
    while not stopping.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
