"""One settings object, read from the environment. The only module that reads os.environ."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from fractions import Fraction
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import parse_many

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALLOCATION_ORDERS = ("oldest_first", "as_named")  # see Settings.allocation_order


class SettingsError(ValueError):
    """A setting has a value the service cannot run with; the message names it."""


def _boolean(raw: str) -> bool:
    """A switch: 1/true/yes/on or 0/false/no/off; anything else is refused, not taken as off."""
    word = raw.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _default_database_url() -> str:
    return f"sqlite:///{PROJECT_ROOT / 'var' / 'premium_billing.db'}"


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=_default_database_url)
    billing_timezone: str = "UTC"
    secret_key: str = "dev-only-secret-change-me"
    public_base_url: str = "http://127.0.0.1:8000"
    # Billing rules (DESIGN.md defaults)
    invoice_lead_days: int = 14
    renewal_lead_days: int = 30
    grace_days: int = 30
    reinstatement_days: int = 30
    short_rate_penalty: Fraction = Fraction(1, 10)
    writeoff_tolerance_abs: int = 100
    writeoff_tolerance_pct: Fraction = Fraction(1, 100)
    # Business dates: a job's as_of, a payment's received_on and an effective date must lie
    # within this many days of the business date (as_of and received_on never after it),
    # unless ALLOW_TIME_TRAVEL is on (the demo and the tests: any date, as Stripe's test
    # clocks allow).
    business_date_window_days: int = 90
    allow_time_travel: bool = False
    # Which installments of a policy a payment naming one of them settles: "oldest_first"
    # (the oldest open ones first, the named invoice kept in the evidence) or "as_named".
    # A person's explicit allocation always stands as given.
    allocation_order: str = "oldest_first"
    # Jobs
    job_batch_size: int = 5000
    scheduler_times: str = "issue_invoices=02:00,renewals=02:30,collections=04:00"
    scheduler_poll_seconds: float = 5.0
    # Reconciliation (issue 6)
    reconcile_auto_threshold: float = 0.90  # a match scoring at least this is posted
    reconcile_interval_minutes: int = 15  # the scheduler's `reconcile` job
    # A run deciding at least this many payments posts from writer processes (PostgreSQL;
    # 0: always threads): matching and posting then use a core each.
    reconcile_writer_processes_from: int = 10_000
    # Another bank's CSV header names: "date=Booking Date,amount=Amount,bank_reference=" (an
    # empty name: the bank has no such column; the line's reference is then derived), and
    # its layout: date_format=, decimal=, thousands=, delimiter=, skip_lines=, encoding=,
    # statement_currency=, debit=/credit= columns (reconciliation/bank_files/csv_reader.py).
    bank_csv_columns: str = ""
    stripe_deposit_descriptor: str = "STRIPE"  # bank text of a Stripe payout deposit
    deposit_window_days: int = 3  # a payout's bank deposit: arrival date ± this many days
    # Stripe
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    stripe_max_network_retries: int = 2
    stripe_timeout_seconds: float = 10.0
    stripe_webhook_tolerance: int = 300
    # Checkout return pages; empty: the portal's pages under PUBLIC_BASE_URL.
    stripe_success_url: str = ""
    stripe_cancel_url: str = ""
    # Outbound requests per second (Stripe's live limit is 100/s).
    stripe_outbound_rate: float = 80.0
    autopay_retry_days: str = "3,5,7"
    # Collections: the delinquency plans (a JSON or TOML file; empty: the built-in plans),
    # and how many days late a notice may still go (a later one is skipped; a lapse never).
    delinquency_plans: str = ""
    collections_stale_days: int = 3
    # After a lapsed policy's reinstatement window: write off what it still owes (a batch
    # through the posting engine per invoice), or leave it open for a person (default).
    collections_write_off_after_window: bool = False
    # Batches the collections job assesses at once, each a transaction on a connection of
    # its own (PostgreSQL; on SQLite one at a time): the database's work on more cores.
    collections_workers: int = 2
    webhook_max_attempts: int = 8
    # "inline": post in the webhook request; "deferred": store, answer, post in a drain
    # thread of each API process (the webhook answers as fast as an insert).
    webhook_processing: str = "inline"
    webhook_retry_base_seconds: float = 60.0
    webhook_lock_timeout_ms: int = 5000
    # Deferred: how long a woken drain thread waits for more events, so that it posts them
    # in one set-based batch (more events per batch: less work per event).
    webhook_drain_delay_ms: int = 200
    # Deferred: drain in a thread of each API process (true), or only in a separate
    # `premium-billing drain-webhooks` process (false: the API only stores and answers).
    webhook_drain_in_api: bool = True
    # The service's log level: debug, info (one line per request and per posting), warning.
    log_level: str = "info"
    # Idempotency-Key: a key whose first request neither committed its work nor stored a
    # response within this many seconds was abandoned (its process died): a retry runs anew.
    idempotency_abandoned_seconds: int = 300
    # Request bodies, in bytes: a body larger than its limit is a 413, refused while it is
    # read (chunked bodies too), never read whole. MAX_CONTENT_LENGTH is every endpoint's but
    # these two: bank statement uploads (streamed to disk) and the Stripe webhook.
    max_content_length: int = 2 * 1024 * 1024
    bank_statement_max_length: int = 100 * 1024 * 1024
    webhook_max_length: int = 1024 * 1024
    # A JSON body nesting arrays/objects deeper than this is a 400 before it is parsed.
    json_max_depth: int = 64
    # Strict-Transport-Security max-age (seconds) on responses to HTTPS requests; 0: none.
    hsts_max_age: int = 365 * 24 * 3600
    # GET /metrics: the bearer token of the operator's scraper (good for nothing else); an
    # admin API key is accepted too. Empty: only an admin key.
    metrics_token: str = ""
    # Mail
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    # "off" (plain SMTP, a local relay), "starttls" (upgrade on the port) or "ssl" (SMTPS).
    smtp_tls: str = "off"
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_timeout_seconds: float = 10.0
    # How many SMTP connections a sender's pass uses at once (each sends its share).
    smtp_connections: int = 4
    mail_from: str = "billing@example.com"
    # The senders (`premium-billing send-notifications`): each pass claims at most
    # SENDER_BATCH rows for SENDER_LEASE_SECONDS and stops after SENDER_PASS_SECONDS, so a
    # claimed row is never taken by another sender while this one may still send it.
    sender_batch: int = 200
    sender_pass_seconds: float = 30.0
    sender_lease_seconds: int = 300
    sender_poll_seconds: float = 1.0
    # Email: a failed attempt is retried after NOTIFY_RETRY_BASE_SECONDS × 2^(n−1) (capped
    # at an hour); after NOTIFY_MAX_ATTEMPTS it is `failed`.
    notify_retry_base_seconds: float = 30.0
    notify_max_attempts: int = 12
    # Outbound events: each request's timeout; an endpoint failing for this many days
    # (no success since its first failure) is disabled.
    outbound_timeout_seconds: float = 5.0
    outbound_disable_after_days: int = 5
    # The policyholder portal: how long a portal link (in every email) stays good.
    portal_token_days: int = 30
    # The insurer's name, shown on the portal, its statement of account and its PDF.
    insurer_name: str = "Premium Pet Insurance"
    # Portal requests per client address (flask-limiter's syntax, e.g. "60/minute;600/hour"),
    # counted in each process (gunicorn worker) on its own.
    portal_rate_limit: str = "60/minute"
    # The finance dashboard (/dashboard): this many failed logins for one user name within
    # LOGIN_LOCK_MINUTES lock that name for LOGIN_LOCK_MINUTES; as many per client address
    # as LOGIN_MAX_FAILURES_PER_ADDRESS lock the address (one guesser trying many names).
    login_max_failures: int = 5
    login_max_failures_per_address: int = 20
    login_lock_minutes: int = 15
    # A dashboard login lasts this long (the session cookie's lifetime).
    dashboard_session_hours: int = 8
    # The session cookie's Secure flag: "auto" (when PUBLIC_BASE_URL is https), "on", "off".
    session_cookie_secure: str = "auto"

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.billing_timezone)

    @property
    def stripe_webhook_secrets(self) -> list[str]:
        return [s.strip() for s in self.stripe_webhook_secret.split(",") if s.strip()]

    @property
    def bank_csv_mapping(self) -> dict[str, str | None]:
        """BANK_CSV_COLUMNS as {our field: the bank's header name, or None}."""
        mapping: dict[str, str | None] = {}
        for item in self.bank_csv_columns.split(","):
            name, sep, header = item.partition("=")
            if name.strip() and sep:
                mapping[name.strip()] = header.strip() or None
        return mapping

    @property
    def autopay_retry_offsets(self) -> list[int]:
        """Days after the due date of each autopay retry (AUTOPAY_RETRY_DAYS, e.g. "3,5,7")."""
        return sorted({int(d) for d in self.autopay_retry_days.split(",") if d.strip()})

    @property
    def checkout_success_url(self) -> str:
        base = self.public_base_url.rstrip("/")
        return self.stripe_success_url or f"{base}/checkout/done?session_id={{CHECKOUT_SESSION_ID}}"

    @property
    def checkout_cancel_url(self) -> str:
        return self.stripe_cancel_url or f"{self.public_base_url.rstrip('/')}/checkout/cancelled"

    @property
    def cookie_secure(self) -> bool:
        """Whether the dashboard's session cookie is sent over HTTPS only."""
        if self.session_cookie_secure == "auto":
            return self.public_base_url.lower().startswith("https://")
        return self.session_cookie_secure == "on"

    @property
    def is_postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")

    def with_overrides(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def validate(self) -> Settings:
        try:
            ZoneInfo(self.billing_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"BILLING_TIMEZONE: unknown time zone {self.billing_timezone!r}"
            ) from None
        if self.log_level.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise SettingsError("LOG_LEVEL: debug, info, warning or error")
        if self.allocation_order not in ALLOCATION_ORDERS:
            raise SettingsError("ALLOCATION_ORDER: must be oldest_first or as_named")
        if self.webhook_processing not in ("inline", "deferred"):
            raise SettingsError("WEBHOOK_PROCESSING: must be inline or deferred")
        for name in (
            "invoice_lead_days",
            "renewal_lead_days",
            "grace_days",
            "job_batch_size",
            "business_date_window_days",
            "collections_stale_days",
        ):
            if getattr(self, name) < 0:
                raise SettingsError(f"{name.upper()}: must not be negative")
        try:
            offsets = self.autopay_retry_offsets
        except ValueError:
            raise SettingsError("AUTOPAY_RETRY_DAYS: comma-separated whole days") from None
        if any(d <= 0 for d in offsets):
            raise SettingsError("AUTOPAY_RETRY_DAYS: days must be greater than 0")
        for name in (
            "max_content_length",
            "bank_statement_max_length",
            "webhook_max_length",
            "json_max_depth",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name.upper()}: must be at least 1")
        try:
            parse_many(self.portal_rate_limit)
        except ValueError:
            raise SettingsError(
                f"PORTAL_RATE_LIMIT: {self.portal_rate_limit!r} is not a rate (e.g. 60/minute)"
            ) from None
        if self.session_cookie_secure not in ("auto", "on", "off"):
            raise SettingsError("SESSION_COOKIE_SECURE: auto, on or off")
        if self.login_max_failures < 1 or self.login_max_failures_per_address < 1:
            raise SettingsError("LOGIN_MAX_FAILURES(_PER_ADDRESS): must be at least 1")
        if self.login_lock_minutes < 1 or self.dashboard_session_hours < 1:
            raise SettingsError("LOGIN_LOCK_MINUTES and DASHBOARD_SESSION_HOURS: at least 1")
        if self.hsts_max_age < 0:
            raise SettingsError("HSTS_MAX_AGE: must not be negative")
        if self.smtp_tls not in ("off", "starttls", "ssl"):
            raise SettingsError("SMTP_TLS: must be off, starttls or ssl")
        for name in (
            "sender_batch",
            "sender_lease_seconds",
            "notify_max_attempts",
            "smtp_connections",
        ):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name.upper()}: must be at least 1")
        if self.sender_pass_seconds * 2 > self.sender_lease_seconds:
            raise SettingsError("SENDER_LEASE_SECONDS: must be at least twice SENDER_PASS_SECONDS")
        if self.stripe_outbound_rate <= 0 or self.webhook_max_attempts < 1:
            raise SettingsError("STRIPE_OUTBOUND_RATE and WEBHOOK_MAX_ATTEMPTS must be positive")
        return self

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            default = getattr(cls, f.name, None)
            try:
                if f.name in ("short_rate_penalty", "writeoff_tolerance_pct"):
                    values[f.name] = Fraction(raw)
                elif isinstance(default, bool):
                    values[f.name] = _boolean(raw)
                elif isinstance(default, float):
                    values[f.name] = float(raw)
                elif isinstance(default, int):
                    values[f.name] = int(raw)
                else:
                    values[f.name] = raw
            except (ValueError, ZeroDivisionError):
                raise SettingsError(f"{f.name.upper()}: {raw!r} is not valid") from None
        return cls(**values).validate()
