"""The delinquency plans in force: built in (DESIGN.md's defaults with GRACE_DAYS,
REINSTATEMENT_DAYS and AUTOPAY_RETRY_DAYS), or read from the JSON or TOML file that
DELINQUENCY_PLANS names, over those defaults, validated when loaded: a bad plan stops
start-up with one line naming the field."""

from __future__ import annotations

import json
import tomllib
from functools import lru_cache
from pathlib import Path

from premium_billing.collections.rules import PRODUCTS, Plan, PlanError, parse_plans
from premium_billing.config import Settings, SettingsError


@lru_cache(maxsize=8)
def _load(
    path: str, grace_days: int, reinstatement_days: int, retries: tuple[int, ...]
) -> dict[str, Plan]:
    defaults = {
        product: Plan(
            product,
            grace_start_days=max(1, min(14, grace_days)),
            grace_days=grace_days,
            reinstatement_days=reinstatement_days,
            autopay_retry_days=retries,
        )
        for product in PRODUCTS
    }
    if not path:
        return defaults
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise SettingsError(f"DELINQUENCY_PLANS: cannot read {path}: {error.strerror}") from None
    try:
        raw = tomllib.loads(text) if file.suffix == ".toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise SettingsError(f"DELINQUENCY_PLANS: {path} is not valid: {error}") from None
    try:
        return parse_plans(raw, defaults)
    except PlanError as error:
        raise SettingsError(str(error)) from None


def plans(settings: Settings) -> dict[str, Plan]:
    """Every product's plan (SettingsError naming the field when the file is bad)."""
    return _load(
        settings.delinquency_plans,
        settings.grace_days,
        settings.reinstatement_days,
        tuple(settings.autopay_retry_offsets),
    )


def plan_for(settings: Settings, product: str) -> Plan:
    return plans(settings)[product]
