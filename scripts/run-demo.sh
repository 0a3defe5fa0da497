#!/usr/bin/env bash
# `make run`: migrate, demo data, then the scheduler, the webhook drain and the API. Without Stripe keys in the
# environment it also starts the fake Stripe, so "Pay now" works on a machine offline.
set -euo pipefail
: "${PORT:=8000}" "${BIN:=.venv/bin}" "${STRIPE_FAKE_PORT:=12111}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

if [ -z "${STRIPE_SECRET_KEY:-}" ]; then
  export STRIPE_SECRET_KEY=sk_test_fake
  export STRIPE_WEBHOOK_SECRET=whsec_demo_only_not_secret
  export STRIPE_API_BASE="http://127.0.0.1:$STRIPE_FAKE_PORT"
  "$BIN/python" -m devtools.fake_stripe --port "$STRIPE_FAKE_PORT" \
    --webhook-url "$PUBLIC_BASE_URL/webhooks/stripe" \
    --webhook-secret "$STRIPE_WEBHOOK_SECRET" &
  pids+=("$!")
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$STRIPE_FAKE_PORT") 2>/dev/null && break
    sleep 0.1
  done
  echo "fake Stripe on $STRIPE_API_BASE (set STRIPE_SECRET_KEY to use Stripe's test mode)"
fi

"$BIN/premium-billing" db upgrade
"$BIN/premium-billing" demo
"$BIN/premium-billing" scheduler &
pids+=("$!")
# Webhooks as in production at volume: the API stores and answers, a drain process posts
# (set WEBHOOK_PROCESSING=inline to post inside the webhook request instead).
export WEBHOOK_PROCESSING="${WEBHOOK_PROCESSING:-deferred}" WEBHOOK_DRAIN_IN_API=false
if [ "$WEBHOOK_PROCESSING" = deferred ]; then
  "$BIN/premium-billing" drain-webhooks &
  pids+=("$!")
fi
"$BIN/premium-billing" serve --port "$PORT"
