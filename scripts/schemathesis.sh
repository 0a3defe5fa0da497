#!/usr/bin/env bash
# `make schemathesis`: schemathesis (in a venv of its own) against the OpenAPI document a
# running server serves, every operation, checking that no request gets a 5xx.
#
# It starts what `make run` starts, on free ports, on a SQLite database of its own under
# var/schemathesis/ (never the demo's): the fake Stripe, the demo data (its admin key; the
# checkout's var/demo-admin-key is put back as it was), the API (`premium-billing serve`,
# 2 gunicorn workers), then runs schemathesis, bounded by ST_MAX_EXAMPLES test cases per
# operation and phase and ST_MAX_TIME seconds in all, and stops everything it started,
# whatever happens. Its output, its report (JSON, and a pytest file reproducing each
# failure) and the server's log are left in var/schemathesis/. Exit status: schemathesis'.
# ST_WORKERS=1: schemathesis 4's coverage phase, run in threads on Python 3.11, can trip
# over CPython's ast.parse (a runtime error of its own, not the server's).
set -euo pipefail
: "${BIN:=.venv/bin}" "${PYTHON:=python3}"
: "${ST_VENV:=var/st-venv}" "${ST_VERSION:=>=4.0,<5}"
: "${ST_MAX_EXAMPLES:=25}" "${ST_MAX_TIME:=300}" "${ST_WORKERS:=1}" "${ST_SEED:=12}"

work="$PWD/var/schemathesis"
rm -rf "$work"
mkdir -p "$work/metrics" "$work/report"

if [ ! -x "$ST_VENV/bin/schemathesis" ]; then
  "$PYTHON" -m venv "$ST_VENV"
  "$ST_VENV/bin/python" -m pip install -q --upgrade pip
  "$ST_VENV/bin/python" -m pip install -q "schemathesis$ST_VERSION"
fi

free_port() { "$BIN/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
STRIPE_FAKE_PORT=$(free_port)
export DATABASE_URL="sqlite:///$work/schemathesis.db"
export PUBLIC_BASE_URL="http://127.0.0.1:$PORT"
export PROMETHEUS_MULTIPROC_DIR="$work/metrics"
export STRIPE_SECRET_KEY=sk_test_fake STRIPE_WEBHOOK_SECRET=whsec_schemathesis_only
export STRIPE_API_BASE="http://127.0.0.1:$STRIPE_FAKE_PORT"
export LOG_LEVEL=warning
# As `make run` serves the demo: any date of the billing calendar (1900-2999) is taken.
export ALLOW_TIME_TRAVEL="${ALLOW_TIME_TRAVEL:-true}"

key_file=var/demo-admin-key # the demo writes its key there: put back what was there
saved_key=""
[ -f "$key_file" ] && saved_key=$(cat "$key_file")
restore_key() {
  if [ -n "$saved_key" ]; then printf '%s\n' "$saved_key" >"$key_file"; else rm -f "$key_file"; fi
}

services=()
stop() {
  trap '' INT TERM
  trap - EXIT
  restore_key
  [ ${#services[@]} -gt 0 ] || return 0
  kill -TERM "${services[@]}" 2>/dev/null || true
  for _ in $(seq 1 150); do
    kill -0 "${services[@]}" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "${services[@]}" 2>/dev/null || true
  wait "${services[@]}" 2>/dev/null || true
}
trap 'stop; trap - INT; kill -s INT $$' INT
trap 'stop; trap - TERM; kill -s TERM $$' TERM
trap stop EXIT

"$BIN/python" -m devtools.fake_stripe --port "$STRIPE_FAKE_PORT" \
  --webhook-url "$PUBLIC_BASE_URL/webhooks/stripe" --webhook-secret "$STRIPE_WEBHOOK_SECRET" \
  >"$work/fake_stripe.log" 2>&1 &
services+=("$!")
for _ in $(seq 1 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$STRIPE_FAKE_PORT") 2>/dev/null && break
  sleep 0.1
done

"$BIN/premium-billing" db upgrade >/dev/null
"$BIN/premium-billing" demo >"$work/demo.log" # ids that exist (pol_1, inv_1, ...) to reach
KEY=$(tr -d '[:space:]' <"$key_file")
restore_key
"$BIN/premium-billing" serve --port "$PORT" --workers 2 >"$work/server.log" 2>&1 &
services+=("$!")
for _ in $(seq 1 300); do
  curl -sf "$PUBLIC_BASE_URL/readyz" >/dev/null 2>&1 && break
  sleep 0.2
done
curl -sf "$PUBLIC_BASE_URL/readyz" >/dev/null

status=0
"$ST_VENV/bin/schemathesis" run "$PUBLIC_BASE_URL/api/v1/openapi.json" \
  --checks not_a_server_error \
  --header "Authorization: Bearer $KEY" \
  --max-examples "$ST_MAX_EXAMPLES" --max-time "$ST_MAX_TIME" \
  --workers "$ST_WORKERS" --seed "$ST_SEED" \
  --report json,pytest --report-dir "$work/report" 2>&1 | tee "$work/schemathesis.log" || status=$?

# The server's own count of what it answered, by status class (GET /metrics).
curl -s -H "Authorization: Bearer $KEY" "$PUBLIC_BASE_URL/metrics" | "$BIN/python" -c '
import collections, sys
from prometheus_client.parser import text_string_to_metric_families
by = collections.Counter()
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        if s.name == "premium_billing_http_requests_total":
            by[s.labels["status"][0] + "xx"] += s.value
print("server answered:", ", ".join(f"{k} {int(v)}" for k, v in sorted(by.items())))
'
echo "server log: $work/server.log; report: $work/report/"
exit "$status"
