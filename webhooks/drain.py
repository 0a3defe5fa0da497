"""Deferred webhook processing: one daemon thread per API process posts queued events.

Woken by each enqueued event, and every second anyway (for events another process queued
and did not get to). Several processes drain at once safely: a batch is taken under row locks
(`SKIP LOCKED` on PostgreSQL) and posted once (`services.webhook_drain`).
"""

from __future__ import annotations

import logging
import os
import threading

from premium_billing.config import Settings
from premium_billing.db import Database
from premium_billing.stripe_billing import drain as webhook_drain

log = logging.getLogger(__name__)


class Drainer:
    def __init__(self, db: Database, settings: Settings) -> None:
        self.db = db
        self.settings = settings
        self.wake = threading.Event()
        self.halt = threading.Event()
        self.stopped = False
        self.pid = os.getpid()
        self.thread = threading.Thread(target=self._run, name="webhook-drain", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopped = True
        self.halt.set()
        self.wake.set()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout=10)

    def _run(self) -> None:
        while not self.stopped:
            self.wake.wait(timeout=1.0)
            self.wake.clear()
            if self.stopped:
                return
            # Gather a batch: events arriving meanwhile are posted together.
            if self.halt.wait(timeout=self.settings.webhook_drain_delay_ms / 1000):
                return
            self.wake.clear()
            try:
                while webhook_drain.drain(self.db, self.settings):
                    pass
            except Exception:  # keep draining; the retry job is the backstop
                log.exception("webhook drain failed")


_lock = threading.Lock()
_drainers: dict[int, Drainer] = {}


def notify(db: Database, settings: Settings) -> None:
    """Wake this process's drainer, starting it on first use (after a fork, a new one)."""
    key = id(db)
    with _lock:
        drainer = _drainers.get(key)
        if drainer is None or drainer.pid != os.getpid():
            drainer = _drainers[key] = Drainer(db, settings)
            db.on_dispose.append(drainer.stop)
            db.on_dispose.append(lambda: _drainers.pop(key, None))
    drainer.wake.set()
