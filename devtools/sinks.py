"""Loopback receivers for what the senders send: an SMTP server (aiosmtpd) keeping every
message, and a threaded HTTP server verifying each event's Standard Webhooks signature
with the `standardwebhooks` library. The tests and bench/bench_senders.py use them."""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
from collections.abc import Callable
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Keep:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.sink.lock:
            self.sink.messages.append(message)  # type: ignore[arg-type]
            self.sink.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


class SmtpSink:
    """An SMTP server on 127.0.0.1:`port` (a free one by default) keeping what it accepts;
    `stop()` then `start()` again on the same port: the server down for a while."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.lock = threading.Lock()
        self.controller: Controller | None = None

    def start(self) -> SmtpSink:
        self.controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def until_idle(one_pass: Callable[[], Any]) -> int:
    """Run a sender's passes until one claims nothing; how many were sent."""
    sent = 0
    while True:
        stats = one_pass()
        sent += stats.sent
        if stats.claimed == 0:
            return sent


def parts(message: EmailMessage) -> tuple[str, str]:
    """The plain text and the HTML of a message."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return (
        text.get_content() if text is not None else "",  # type: ignore[attr-defined]
        html.get_content() if html is not None else "",  # type: ignore[attr-defined]
    )


class WebhookSink:
    """A threaded HTTP server on 127.0.0.1 taking events for one endpoint secret: each
    verified with `standardwebhooks` (a bad signature is a 400 and kept in `rejected`);
    `answer` decides the status (e.g. 500 to fail every delivery)."""

    def __init__(self, port: int = 0) -> None:
        self.secret = ""
        self.stats: Callable[[], dict[str, Any]] = self.counts
        self.events: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.rejected: list[str] = []
        self.answer: Callable[[dict[str, Any]], int] = lambda _event: 200
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                try:
                    event = Webhook(sink.secret).verify(raw, headers)
                except (WebhookVerificationError, ValueError) as error:
                    with sink.lock:
                        sink.rejected.append(str(error))
                    self._reply(400)
                    return
                status = sink.answer(event)
                if 200 <= status < 300:
                    with sink.lock:
                        sink.events.append(event)
                        sink.headers.append(headers)
                self._reply(status)

            def do_GET(self) -> None:  # noqa: N802
                self._reply(200, sink.stats())  # what was received (the bench reads it)

            def _reply(self, status: int, content: dict[str, Any] | None = None) -> None:
                body = json.dumps(content or {"status": status}).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def counts(self) -> dict[str, Any]:
        with self.lock:
            return {
                "events": len(self.events),
                "distinct_webhook_ids": len({e["id"] for e in self.events}),
                "rejected": len(self.rejected),
            }

    def __enter__(self) -> WebhookSink:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)
        self.server.server_close()


def main(argv: list[str] | None = None) -> None:
    """`python -m devtools.sinks --smtp-port P --http-port Q --secret whsec_…`: both
    receivers in a process of their own until SIGTERM; `GET /stats` on the HTTP port
    answers what they received."""
    import argparse
    import signal

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with SmtpSink(args.smtp_port) as smtp, WebhookSink(args.http_port) as hooks:
        hooks.secret = args.secret

        def stats() -> dict[str, Any]:
            with smtp.lock:
                emails = {
                    "emails": len(smtp.messages),
                    "distinct_message_ids": len({m["Message-ID"] for m in smtp.messages}),
                }
            return {**hooks.counts(), **emails}

        hooks.stats = stats
        print("ready", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
