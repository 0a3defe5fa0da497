"""What GET /metrics costs the paths it counts: per request (a counter and a latency
histogram by route) and per posted Stripe event (the posting latency histogram), in-process
and in multiprocess mode (PROMETHEUS_MULTIPROC_DIR: each write goes to a memory-mapped
file). No database; each mode in a process of its own (the mode is chosen at import).

`python -m bench.bench_metrics [--n 200000]`
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time


def measure(n: int) -> str:
    from premium_billing.http import metrics as http_metrics
    from webhooks import metrics as webhook_metrics

    route = "/api/v1/policies/<policy_id>"
    started = time.perf_counter()
    for _ in range(n):
        began = time.perf_counter()
        http_metrics.REQUESTS.labels("GET", route, "200").inc()
        http_metrics.REQUEST_SECONDS.labels("GET", route).observe(time.perf_counter() - began)
    per_request = (time.perf_counter() - started) / n * 1e6
    started = time.perf_counter()
    webhook_metrics.posted_many("deferred", [1234] * n)
    per_event = (time.perf_counter() - started) / n * 1e6
    return f"per request {per_request:.1f} us, per posted event {per_event:.1f} us"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--mode", choices=["in-process", "multiprocess"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        print(f"{args.mode}: {measure(args.n)}")
        return
    for mode in ("in-process", "multiprocess"):
        env = dict(os.environ)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with tempfile.TemporaryDirectory() as directory:
            if mode == "multiprocess":
                env["PROMETHEUS_MULTIPROC_DIR"] = directory
            command = [sys.executable, "-m", "bench.bench_metrics", "--n", str(args.n)]
            subprocess.run([*command, "--mode", mode], env=env, check=True)


if __name__ == "__main__":
    main()
