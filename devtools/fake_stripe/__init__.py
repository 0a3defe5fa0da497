"""A small fake Stripe, over real HTTP, for tests and the offline demo.

It speaks the subset of Stripe's v1 REST API that `stripe_gateway` uses, the way Stripe
speaks it: form-encoded bodies with nested keys (`metadata[invoice_id]=...`,
`line_items[0][price_data][unit_amount]=...`), Bearer secret-key auth, Stripe-shaped
objects and errors, and Stripe's idempotency rules (`idempotency.py`).

Faults injected with `fail_next` answer before the idempotency layer (like a failing load
balancer), so a retry with the same key really runs the request.  `delay_next` runs and
saves the request, then holds the answer: a client that times out and retries with the
same key gets the saved answer replayed, and only one object exists.

Hosted Checkout: a session's `url` points at `GET /checkout/{id}` on this server, a tiny
page with the amount and a Pay button that posts to `/checkout/{id}/pay` (tests may post
there directly, with `card=4000000000000002` to decline).  Paying completes the session,
creates the PaymentIntent and Charge (with fee and balance transaction) and delivers
signed webhooks to `webhook_url` before redirecting to `success_url`.  The test cards and
what they do: `cards.py`.

Helpers that emit events: `refund_charge` (charge.refunded), `dispute` / `close_dispute`
(charge.dispute.created / closed), `payout` (payout.paid; its balance transactions are
listed by `GET /v1/balance_transactions?payout=po_...`), `send_event` (any event, signed
now or at a given timestamp, with any secret: re-send, reorder, delay).

Run for the demo: `python -m devtools.fake_stripe --port 12111
--webhook-url http://127.0.0.1:5000/webhooks/stripe --webhook-secret whsec_...`

The modules, from the wire inwards: `server` (the HTTP server, its routing and the
`FakeStripe` facade), `api` (the `/v1` request pipeline and routes), `checkout_page`,
`webhooks` (signing and delivery), `idempotency`, `wire` (one HTTP exchange, the request
log), `account` (the resources wired together), `checkout_sessions` and `resources` (what
each API resource does), `objects` (the Stripe objects' shapes), `store`, `params` (form
decoding and validation), `cards`, and `upstream` (all that is taken from `premium_billing`).
"""

from .server import FakeStripe
from .webhooks import Delivery
from .wire import RecordedRequest

__all__ = ["Delivery", "FakeStripe", "RecordedRequest"]
