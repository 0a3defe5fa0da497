"""The webhook sender: events signed exactly as Stripe signs them (`Stripe-Signature`,
HMAC-SHA256 of `{timestamp}.{body}`) and POSTed to the endpoint by a delivery thread, in
order; or held, while `auto_deliver` is off or no endpoint is configured."""

from __future__ import annotations

import copy
import json
import queue
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from .upstream import sign_webhook

_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass(frozen=True)
class Delivery:
    """One webhook POST to `webhook_url` and what came back."""

    event_id: str
    event_type: str
    status: int | None
    error: str | None
    body: bytes
    signature: str


class WebhookSender:
    def __init__(self, url: str | None, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.auto_deliver = True  # False: events are only held (see `held`)
        self._lock = threading.Lock()
        self._held: list[dict[str, Any]] = []
        self._deliveries: list[Delivery] = []
        self._queue: queue.Queue[tuple[dict[str, Any], threading.Event] | None] = queue.Queue()
        self._promised = 0  # batches answered to the client, not queued yet
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._delivery_loop, name="fake-stripe-webhooks", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def held(self) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self._held)

    @property
    def deliveries(self) -> list[Delivery]:
        with self._lock:
            return list(self._deliveries)

    def dispatch(self, events: list[dict[str, Any]], *, wait: bool) -> None:
        """Queue `events` for delivery (and with `wait`, until they are delivered, at most
        30 s each); or hold them."""
        if not events:
            return
        if not self.url or not self.auto_deliver:
            with self._lock:
                self._held.extend(copy.deepcopy(events))
            return
        done: list[threading.Event] = []
        for event in events:
            flag = threading.Event()
            self._queue.put((event, flag))
            done.append(flag)
        if wait:
            for flag in done:
                flag.wait(timeout=30)

    def promise(self) -> None:
        """A batch of events is about to be answered to the API client and dispatched after
        (`dispatch_promised`): `wait_for_deliveries` waits for it meanwhile."""
        with self._lock:
            self._promised += 1

    def dispatch_promised(self, events: list[dict[str, Any]]) -> None:
        try:
            self.dispatch(events, wait=False)
        finally:
            with self._lock:
                self._promised -= 1

    def wait_for_deliveries(self, timeout: float = 10) -> None:
        """Block until every queued webhook has been posted."""
        deadline = time.monotonic() + timeout
        while (self._promised or self._queue.unfinished_tasks) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _delivery_loop(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                event, flag = item
                try:
                    self.send(event)
                finally:
                    flag.set()
            finally:
                self._queue.task_done()

    def send(
        self,
        event: dict[str, Any],
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        url: str | None = None,
    ) -> Delivery:
        """Sign `event` (now, or at `timestamp`; with `secret` or the configured one) and
        POST it to `url` or the configured endpoint. Returns what the endpoint answered."""
        target = url or self.url
        if not target:
            raise RuntimeError("no webhook_url configured")
        body = json.dumps(event, indent=2).encode("utf-8")
        header = sign_webhook(
            body,
            secret or self.secret,
            int(time.time()) if timestamp is None else timestamp,
        )
        request = urllib.request.Request(
            target,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": header,
                "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
                "Cache-Control": "no-cache",
            },
        )
        status: int | None = None
        error: str | None = None
        try:
            with _NO_PROXY_OPENER.open(request, timeout=10) as response:
                status = response.status
                response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            exc.read()
            exc.close()
        except (urllib.error.URLError, OSError) as exc:
            error = str(exc)
        delivery = Delivery(
            event_id=str(event.get("id")),
            event_type=str(event.get("type")),
            status=status,
            error=error,
            body=body,
            signature=header,
        )
        with self._lock:
            self._deliveries.append(delivery)
        return delivery
