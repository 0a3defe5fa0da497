#!/usr/bin/env bash
# `make run`: migrate, demo data, then the scheduler, the webhook drain, the notification sender and the API.
# Without Stripe keys in the environment it also starts the fake Stripe, so "Pay now" works on a machine
# offline; without SMTP_HOST, an SMTP server on loopback (aiosmtpd) keeping every email in var/mail/.
#
# Every process is started in the background and the script waits for it: bash runs a trap
# only between commands, and `wait` is the one that a signal interrupts at once. Ctrl-C, a
# SIGTERM to this script, to its process group or to `make run` (make passes SIGTERM on to
# the recipe, which execs this script) stop every process started here. When any of the
# services stops, the others are stopped too.
set -euo pipefail
: "${PORT:=8000}" "${BIN:=.venv/bin}" "${STRIPE_FAKE_PORT:=12111}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:$PORT}"
# The demo may be driven to any business date (run-job --as-of, a payment received_on, an
# effective date), as Stripe's test clocks allow; a real deployment leaves this off.
export ALLOW_TIME_TRAVEL="${ALLOW_TIME_TRAVEL:-true}"

services=() # pids of the processes that run until stopped
step=""     # pid of the setup command running now, if any

stop() {
  trap '' INT TERM # a second Ctrl-C must not cut the clean-up short
  trap - EXIT
  local pids=("${services[@]}")
  if [ -n "$step" ]; then pids+=("$step"); fi
  [ ${#pids[@]} -gt 0 ] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  # Each stops on SIGTERM within a second or two (gunicorn lets a request in flight finish);
  # whatever still runs after 15 s is killed.
  for _ in $(seq 1 150); do
    kill -0 "${pids[@]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
# Stop the children, then die of the same signal, so that make (or the shell) knows why.
on_signal() {
  stop
  trap - "$1"
  kill -s "$1" $$
}
trap 'on_signal INT' INT
trap 'on_signal TERM' TERM
trap stop EXIT

start() { # a service: runs until stopped
  "$@" &
  services+=("$!")
}
run() { # a setup command: the script waits for it, and fails when it fails
  "$@" &
  step=$!
  wait "$step"
  step=""
}

# GET /metrics adds up the counts of every process started here (the API's workers, the
# scheduler, the webhook drain): each writes its own files in one directory, set before any
# of them starts and emptied of an earlier run's files (premium_billing/http/metrics.py).
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-$PWD/var/metrics}"
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
find "$PROMETHEUS_MULTIPROC_DIR" -maxdepth 1 -type f -name '*.db' -delete

if [ -z "${STRIPE_SECRET_KEY:-}" ]; then
  export STRIPE_SECRET_KEY=sk_test_fake
  export STRIPE_WEBHOOK_SECRET=whsec_demo_only_not_secret
  export STRIPE_API_BASE="http://127.0.0.1:$STRIPE_FAKE_PORT"
  fake_stripe=1
  start "$BIN/python" -m devtools.fake_stripe --port "$STRIPE_FAKE_PORT" \
    --webhook-url "$PUBLIC_BASE_URL/webhooks/stripe" \
    --webhook-secret "$STRIPE_WEBHOOK_SECRET"
  for _ in $(seq 1 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$STRIPE_FAKE_PORT") 2>/dev/null && break
    sleep 0.1
  done
  echo "fake Stripe on $STRIPE_API_BASE (set STRIPE_SECRET_KEY to use Stripe's test mode)"
fi

if [ -z "${SMTP_HOST:-}" ]; then
  # The demo's mail server: every email the sender sends lands in the Maildir var/mail/new/.
  export SMTP_HOST=127.0.0.1 SMTP_PORT="${SMTP_PORT:-8025}" SMTP_TLS=off
  local_mail=1
  mkdir -p var/mail/tmp var/mail/new var/mail/cur # a Maildir: Mailbox makes none of them
  start "$BIN/python" -m aiosmtpd -n -l "$SMTP_HOST:$SMTP_PORT" -c aiosmtpd.handlers.Mailbox var/mail
  echo "emails: an SMTP server on $SMTP_HOST:$SMTP_PORT keeps them in var/mail/new/ (set SMTP_HOST to use yours)"
fi

run "$BIN/premium-billing" db upgrade
# The book and the year to date (once per database; DEMO_POLICYHOLDERS, default 300). Its
# output is kept: what to open is printed again once everything serves.
mkdir -p var
run "$BIN/premium-billing" demo > >(tee var/demo-output.txt)
start "$BIN/premium-billing" scheduler
# Webhooks as in production at volume: the API stores and answers, a drain process posts
# (set WEBHOOK_PROCESSING=inline to post inside the webhook request instead).
export WEBHOOK_PROCESSING="${WEBHOOK_PROCESSING:-deferred}" WEBHOOK_DRAIN_IN_API=false
if [ "$WEBHOOK_PROCESSING" = deferred ]; then
  start "$BIN/premium-billing" drain-webhooks
fi
# Emails (SMTP) and outbound events (webhook endpoints), with retries: its own process.
start "$BIN/premium-billing" send-notifications
start "$BIN/premium-billing" serve --port "$PORT"
echo "API docs: $PUBLIC_BASE_URL/api/v1/docs (no key needed to read; Authorize to try calls)"
echo "          docs/api.md (the guide: keys, roles, errors, a curl example per resource)"
echo "Metrics:  curl -H \"Authorization: Bearer \$(cat var/demo-admin-key)\" $PUBLIC_BASE_URL/metrics"
echo "Emails:   ls var/mail/new/  (each one a message; the API lists them: GET /api/v1/notifications)"

if [ -n "${fake_stripe:-}" ]; then
  # A few payers pay through Checkout: the fake Stripe's page, its signed webhook, the drain.
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.2
  done
  run "$BIN/python" -m devtools.demo_checkouts --base "$PUBLIC_BASE_URL" \
    --stripe "$STRIPE_API_BASE" --key-file var/demo-admin-key ||
    echo "the Checkout round trips failed (the rest of the demo runs)" >&2
fi
echo
echo "The demo serves (what it loaded and how long it took: var/demo-output.txt):"
grep -E '^(demo data|simulated|the demo took|portal of|dashboard|admin API key|try: curl)' \
  var/demo-output.txt || true
if [ -n "${local_mail:-}" ]; then echo "emails: var/mail/new/ (one file a message)"; fi
echo "Ctrl-C stops the API, the scheduler, the webhook drain, the sender, the mail server and the fake Stripe."

status=0
wait -n || status=$?
echo "a process of the demo stopped (exit $status); stopping the others" >&2
exit "$status"
