#!/usr/bin/env bash
# `make test`: the page tests drive the system Chromium (tests/e2e/conftest.py looks for
# chromium, chromium-browser or google-chrome). Install it with apt-get when it is missing
# and this runs as root; otherwise say in one line what to install, and fail.
set -euo pipefail

for name in chromium chromium-browser google-chrome; do
  if command -v "$name" >/dev/null 2>&1; then exit 0; fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "make test needs Chromium for the page tests: install it (sudo apt-get install chromium, or your system's chromium package) and run make test again" >&2
  exit 1
fi

echo "installing Chromium for the page tests (apt-get install chromium)"
export DEBIAN_FRONTEND=noninteractive
# Another apt-get (a first boot's updates, a background install) may hold apt's locks for
# minutes. DPkg::Lock::Timeout makes install wait for the dpkg lock; update takes the
# package lists' lock, which apt does not wait for, so update is retried while it is held.
for attempt in $(seq 1 60); do
  if output=$(apt-get -qq update 2>&1); then break; fi
  if [ "$attempt" = 60 ] || ! grep -q "Could not get lock" <<<"$output"; then
    printf '%s\n' "$output" >&2
    echo "apt-get update failed: install Chromium yourself (apt-get install chromium) and run make test again" >&2
    exit 1
  fi
  [ "$attempt" != 1 ] || echo "apt-get is busy (another process holds its lock); waiting" >&2
  sleep 10
done
if ! apt-get -qq -y -o DPkg::Lock::Timeout=600 install chromium >/dev/null; then
  echo "apt-get install chromium failed (see above): install Chromium yourself and run make test again" >&2
  exit 1
fi
