"""Delinquency: plans, states and the steps due. Pure: standard library only; amounts in
minor units, dates are business dates.

A policy's delinquency is read from its oldest unpaid installment (the *anchor*, its due
date D): every step of its plan falls a whole number of days after D (a reminder 3 days
before it is -3; a step set from grace start or end is moved to D's clock), so a payment
that settles the oldest installment re-anchors the schedule on the next oldest one.

    active (until D) -> past_due (D+1) -> in_grace (D + grace_start_days)
                     -> lapsed (D + grace_days: the lapse, a cancellation for non-payment)

Back to `active` the moment nothing chaseable is unpaid (or less than the plan's threshold);
after a lapse, `reinstated` when the arrears are paid within the reinstatement window.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

STATES = ("active", "past_due", "in_grace", "lapsed", "reinstated")
PRODUCTS = ("pet", "general")
# Steps the collections job takes (autopay retries are the autopay job's, on the plan's days).
STEPS = ("reminder", "grace_notice", "final_notice", "late_fee", "lapse")
# Steps that tell the policyholder something: one whose day is long past is skipped (stale).
NOTICES = ("reminder", "grace_notice", "final_notice")
ANCHORS = ("due", "grace_start", "grace_end")


class PlanError(ValueError):
    """A delinquency plan that cannot be run; the message names the field."""


@dataclass(frozen=True)
class StepRule:
    """A step at `days` from its anchor: the oldest unpaid due date, grace start or end."""

    step: str
    anchor: str
    days: int


@dataclass(frozen=True)
class Plan:
    """A product's delinquency plan (DESIGN.md's defaults)."""

    product: str
    grace_start_days: int = 14
    grace_days: int = 30
    steps: tuple[StepRule, ...] = (
        StepRule("reminder", "due", -3),
        StepRule("reminder", "due", 3),
        StepRule("reminder", "due", 10),
        StepRule("grace_notice", "grace_start", 0),
        StepRule("final_notice", "grace_end", -7),
        StepRule("lapse", "grace_end", 0),
    )
    autopay_retry_days: tuple[int, ...] = (3, 5, 7)
    threshold: int = 500
    late_fee: int = 0
    reinstatement_fee: int = 0
    reinstatement_days: int = 30

    def days_after_due(self, rule: StepRule) -> int:
        """The step's day counted from the oldest unpaid due date."""
        base = {"due": 0, "grace_start": self.grace_start_days, "grace_end": self.grace_days}
        return base[rule.anchor] + rule.days

    def timeline(self) -> tuple[tuple[str, int], ...]:
        """(step, days after the due date) of every step, in order; the late fee (when the
        plan has one) at grace start."""
        return _timeline(self)

    def next_change(self, days: int) -> int | None:
        """The first day after `days` (days after the due date) on which, unpaid, the state
        changes or a step falls: the day a run next has something to do."""
        return _next_change(self, days)

    def as_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "grace_start_days": self.grace_start_days,
            "grace_days": self.grace_days,
            "steps": [{"step": r.step, "from": r.anchor, "days": r.days} for r in self.steps],
            "timeline": [{"step": s, "days_after_due": d} for s, d in self.timeline()],
            "autopay_retry_days": list(self.autopay_retry_days),
            "threshold": self.threshold,
            "late_fee": self.late_fee,
            "reinstatement_fee": self.reinstatement_fee,
            "reinstatement_days": self.reinstatement_days,
        }


@lru_cache(maxsize=64)
def _timeline(plan: Plan) -> tuple[tuple[str, int], ...]:
    steps = [(rule.step, plan.days_after_due(rule)) for rule in plan.steps]
    if plan.late_fee > 0 and not any(s == "late_fee" for s, _ in steps):
        steps.append(("late_fee", plan.grace_start_days))
    return tuple(sorted(steps, key=lambda s: (s[1], STEPS.index(s[0]))))


@lru_cache(maxsize=4096)
def _next_change(plan: Plan, days: int) -> int | None:
    days_of_change = {1, plan.grace_start_days, plan.grace_days, *(d for _s, d in _timeline(plan))}
    return min((d for d in days_of_change if d > days), default=None)


@dataclass(frozen=True)
class Unpaid:
    """An unpaid installment (its invoice's amount due)."""

    due_date: date
    amount: int


@dataclass(frozen=True)
class StepDue:
    step: str
    days_after_due: int
    on: date  # the step's day: anchor + days_after_due
    stale: bool  # a notice whose day is past by more than the stale limit: skipped


@dataclass(frozen=True)
class Assessment:
    state: str
    anchor: date | None  # the oldest unpaid due date
    amount_unpaid: int  # what is chased: unpaid and due by as_of (or the anchor's own)
    amount_overdue: int  # unpaid and due before as_of
    days_overdue: int
    grace_starts_on: date | None
    grace_ends_on: date | None  # the lapse day
    steps: tuple[StepDue, ...] = field(default=())
    # The latest step day (days after the anchor) that has come: what a run has now seen.
    stepped_through: int | None = None
    # The next day on which, unpaid, something happens (None: nothing chased, or lapsed).
    next_on: date | None = None


def assess(
    unpaid: Sequence[Unpaid],
    plan: Plan,
    as_of: date,
    *,
    stale_days: int,
    through: int | None = None,
) -> Assessment:
    """The state on `as_of` of a policy with these unpaid installments, and the steps whose
    day has come. `through`: the days after this anchor already seen by an earlier run (the
    steps up to it are not due again)."""
    owed = [u for u in unpaid if u.amount > 0]
    if not owed:
        return Assessment("active", None, 0, 0, 0, None, None)
    anchor = min(u.due_date for u in owed)
    horizon = max(as_of, anchor)
    chased = sum(u.amount for u in owed if u.due_date <= horizon)
    overdue = sum(u.amount for u in owed if u.due_date < as_of)
    days = (as_of - anchor).days
    grace_start = anchor + timedelta(days=plan.grace_start_days)
    grace_end = anchor + timedelta(days=plan.grace_days)
    if chased < plan.threshold:
        return Assessment("active", anchor, chased, overdue, days, grace_start, grace_end)
    if days <= 0:
        state = "active"
    elif days < plan.grace_start_days:
        state = "past_due"
    elif days < plan.grace_days:
        state = "in_grace"
    else:
        state = "lapsed"
    steps = tuple(
        StepDue(step, after, anchor + timedelta(after), is_stale(step, days - after, stale_days))
        for step, after in plan.timeline()
        if after <= days and (through is None or after > through)
    )  # fmt: skip
    come = [after for _step, after in plan.timeline() if after <= days]
    later = plan.next_change(days)
    return Assessment(
        state,
        anchor,
        chased,
        overdue,
        days,
        grace_start,
        grace_end,
        steps,
        max(come, default=None),
        None if later is None else anchor + timedelta(later),
    )


def is_stale(step: str, days_late: int, stale_days: int) -> bool:
    """A notice more than `stale_days` late is skipped (a lapse or a fee never is)."""
    return step in NOTICES and days_late > stale_days


def reinstatement_window_ends(lapsed_on: date, plan: Plan) -> date:
    return lapsed_on + timedelta(days=plan.reinstatement_days)


def after_lapse(lapsed_on: date, as_of: date, arrears: int, plan: Plan) -> str:
    """What becomes of a lapsed policy on `as_of`: `reinstate` (arrears paid within the
    window), `wait` (within it, still owing) or `closed` (the window has passed)."""
    if as_of > reinstatement_window_ends(lapsed_on, plan):
        return "closed"
    return "reinstate" if arrears <= 0 else "wait"


# ---- loading plans --------------------------------------------------------------------

_PLAN_KEYS = {
    "grace_start_days",
    "grace_days",
    "steps",
    "autopay_retry_days",
    "threshold",
    "late_fee",
    "reinstatement_fee",
    "reinstatement_days",
}


def _whole(value: object, where: str, *, minimum: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(f"{where}: a whole number, not {value!r}")
    if minimum is not None and value < minimum:
        raise PlanError(f"{where}: must be at least {minimum}")
    return value


def _steps(raw: object, where: str) -> tuple[StepRule, ...]:
    if not isinstance(raw, list) or not raw:
        raise PlanError(f"{where}: a non-empty list of steps")
    rules = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise PlanError(f"{at}: an object with step, from and days")
        unknown = set(item) - {"step", "from", "days"}
        if unknown:
            raise PlanError(f"{at}.{sorted(unknown)[0]}: unknown field")
        step = item.get("step")
        if step not in STEPS:
            raise PlanError(f"{at}.step: one of {', '.join(STEPS)}, not {step!r}")
        anchor = item.get("from", "due")
        if anchor not in ANCHORS:
            raise PlanError(f"{at}.from: one of {', '.join(ANCHORS)}, not {anchor!r}")
        rules.append(
            StepRule(
                str(step), str(anchor), _whole(item.get("days", 0), f"{at}.days", minimum=None)
            )
        )
    return tuple(rules)  # fmt: skip


def parse_plan(product: str, raw: object, base: Plan) -> Plan:
    """`base` with what `raw` (a JSON/TOML object) sets, validated."""
    where = f"DELINQUENCY_PLANS: {product}"
    if not isinstance(raw, dict):
        raise PlanError(f"{where}: an object")
    unknown = set(raw) - _PLAN_KEYS
    if unknown:
        raise PlanError(f"{where}.{sorted(unknown)[0]}: unknown field")
    changes: dict[str, Any] = {}
    for key in ("grace_start_days", "grace_days", "threshold", "late_fee", "reinstatement_fee",
                "reinstatement_days"):  # fmt: skip
        if key in raw:
            changes[key] = _whole(raw[key], f"{where}.{key}")
    if "steps" in raw:
        changes["steps"] = _steps(raw["steps"], f"{where}.steps")
    if "autopay_retry_days" in raw:
        days = raw["autopay_retry_days"]
        if not isinstance(days, list):
            raise PlanError(f"{where}.autopay_retry_days: a list of whole days")
        changes["autopay_retry_days"] = tuple(
            sorted({_whole(d, f"{where}.autopay_retry_days", minimum=1) for d in days})
        )
    plan = replace(base, product=product, **changes)
    check_plan(plan, where)
    return plan


def check_plan(plan: Plan, where: str) -> None:
    """Refuse a plan whose timeline cannot happen (PlanError naming the field)."""
    if plan.grace_days < 1:
        raise PlanError(f"{where}.grace_days: must be at least 1")
    if not 1 <= plan.grace_start_days <= plan.grace_days:
        raise PlanError(f"{where}.grace_start_days: between 1 and grace_days ({plan.grace_days})")
    lapses = [r for r in plan.steps if r.step == "lapse"]
    if len(lapses) != 1 or plan.days_after_due(lapses[0]) != plan.grace_days:
        raise PlanError(f"{where}.steps: exactly one lapse, at grace end (from grace_end, days 0)")
    for index, rule in enumerate(plan.steps):
        if plan.days_after_due(rule) > plan.grace_days:
            raise PlanError(f"{where}.steps[{index}]: falls after the lapse")
    seen = [(r.step, plan.days_after_due(r)) for r in plan.steps]
    if len(seen) != len(set(seen)):
        raise PlanError(f"{where}.steps: the same step twice on one day")
    if any(d > plan.grace_days for d in plan.autopay_retry_days):
        raise PlanError(f"{where}.autopay_retry_days: a retry after the lapse")


def parse_plans(raw: object, defaults: Mapping[str, Plan]) -> dict[str, Plan]:
    """Every product's plan: `defaults` with what `raw` ({product: plan}) sets."""
    if not isinstance(raw, dict):
        raise PlanError("DELINQUENCY_PLANS: an object of plans by product (pet, general)")
    unknown = set(raw) - set(PRODUCTS)
    if unknown:
        raise PlanError(f"DELINQUENCY_PLANS: {sorted(unknown)[0]}: not a product (pet, general)")
    plans = dict(defaults)
    for product, body in raw.items():
        plans[product] = parse_plan(product, body, defaults[product])
    return plans
