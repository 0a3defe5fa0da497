"""What the matching engine takes and gives: a payment's facts, the open invoices, the
policyholders and learned payer links; the settings; the decision and its candidates."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date
from fractions import Fraction
from operator import attrgetter
from typing import Any, Literal

from premium_billing.reconciliation.matching.scores import (
    AMBIGUITY_MARGIN,
    AUTO_THRESHOLD,
    DUPLICATE_WINDOW_DAYS,
    MAX_CANDIDATES,
    MAX_NAME_CANDIDATES,
    NO_EVIDENCE,
    WRITEOFF_TOLERANCE_ABS,
    WRITEOFF_TOLERANCE_PCT,
)

Outcome = Literal["matched", "partial", "suspense", "duplicate", "return"]


# --------------------------------------------------------------------------- inputs


@dataclass(frozen=True, slots=True)
class PaymentFacts:
    id: str
    amount: int
    currency: str
    received_on: date
    payer_name: str | None
    payer_account: str | None
    reference: str
    stripe_invoice_id: str | None = None
    is_return: bool = False


@dataclass(frozen=True, slots=True)
class OpenInvoice:
    """An invoice that can take money. `total` is the invoice's total, against which posting
    checks a write-off's tolerance; None when the caller does not know it, and then the
    matcher measures the tolerance against `amount_due` (never more than the total, so it
    never proposes a write-off that posting refuses)."""

    id: str
    number: str
    payment_reference: str
    policy_number: str
    policyholder_id: str
    currency: str
    amount_due: int
    due_date: date
    total: int | None = None


# Oldest first: the order in which invoices are paid and listed.
AGE_KEY = attrgetter("due_date", "number", "id")


@dataclass(frozen=True, slots=True)
class Policyholder:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class PayerLink:
    """A normalised bank account or payer name learned from a confirmed match."""

    key: str
    policyholder_id: str


@dataclass(frozen=True, slots=True)
class MatchSettings:
    auto_threshold: float = AUTO_THRESHOLD
    tolerance_abs: int = WRITEOFF_TOLERANCE_ABS
    tolerance_pct: Fraction = WRITEOFF_TOLERANCE_PCT
    duplicate_window_days: int = DUPLICATE_WINDOW_DAYS
    # A payer-only (name) match is refused when this many policyholders or more carry a name
    # that scores above the threshold: an exact amount is then too likely by chance.
    max_name_candidates: int = MAX_NAME_CANDIDATES
    # The best candidate must beat the runner-up by this much to be unambiguous.
    ambiguity_margin: float = AMBIGUITY_MARGIN
    max_candidates: int = MAX_CANDIDATES


DEFAULT_SETTINGS = MatchSettings()


# --------------------------------------------------------------------------- outputs


@dataclass(frozen=True, slots=True)
class Candidate:
    """An invoice a payment may pay, for a person: its score (0..1), the kind of evidence
    that names it best (`rule`) and why, in words (`reason`)."""

    invoice_id: str
    score: float
    rule: str
    reason: str = ""

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its fields (see MatchDecision.__reduce__)."""
        return (new_candidate, (self.invoice_id, self.score, self.rule, self.reason))


@dataclass(frozen=True, slots=True)
class MatchDecision:
    payment_id: str
    outcome: Outcome
    policyholder_id: str | None = None
    allocations: tuple[tuple[str, int], ...] = ()
    credit: int = 0
    write_offs: tuple[tuple[str, int], ...] = ()
    rule: str = ""
    score: float = NO_EVIDENCE
    evidence: dict[str, str] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its fields, made again by `new_decision` (a large run's decisions go to
        its writer processes): a slotted dataclass's own pickling calls `fields()` for
        every object, on either side."""
        return (
            new_decision,
            (self.payment_id, self.outcome, self.policyholder_id, self.allocations,
             self.credit, self.write_offs, self.rule, self.score, self.evidence,
             self.candidates),
        )  # fmt: skip


# MatchDecision and Candidate made field by field through their slots: a frozen dataclass's
# __init__ sets each field through object.__setattr__, half the cost of a decision.
_DECISION_FIELDS = (
    "payment_id", "outcome", "policyholder_id", "allocations", "credit", "write_offs", "rule",
    "score", "evidence", "candidates",
)  # fmt: skip
_CANDIDATE_FIELDS = ("invoice_id", "score", "rule", "reason")
if (
    tuple(f.name for f in fields(MatchDecision)) != _DECISION_FIELDS
    or tuple(f.name for f in fields(Candidate)) != _CANDIDATE_FIELDS
):
    raise RuntimeError("new_decision and new_candidate must set every field of their dataclass")
_new = object.__new__
_decision_setters = [getattr(MatchDecision, f).__set__ for f in _DECISION_FIELDS]
(_d_id, _d_outcome, _d_holder, _d_allocations, _d_credit, _d_write_offs, _d_rule, _d_score,
 _d_evidence, _d_candidates) = _decision_setters  # fmt: skip
_c_invoice, _c_score, _c_rule, _c_reason = [
    getattr(Candidate, f).__set__ for f in _CANDIDATE_FIELDS
]


def new_decision(
    payment_id: str,
    outcome: Outcome,
    holder: str | None,
    allocations: tuple[tuple[str, int], ...],
    credit: int,
    write_offs: tuple[tuple[str, int], ...],
    rule: str,
    score: float,
    evidence: dict[str, str],
    candidates: tuple[Candidate, ...],
) -> MatchDecision:
    """MatchDecision(payment_id, outcome, holder, ...): the same object, made faster."""
    d: MatchDecision = _new(MatchDecision)
    _d_id(d, payment_id)
    _d_outcome(d, outcome)
    _d_holder(d, holder)
    _d_allocations(d, allocations)
    _d_credit(d, credit)
    _d_write_offs(d, write_offs)
    _d_rule(d, rule)
    _d_score(d, score)
    _d_evidence(d, evidence)
    _d_candidates(d, candidates)
    return d


def new_candidate(invoice_id: str, score: float, rule: str, reason: str) -> Candidate:
    """Candidate(invoice_id, score, rule, reason): the same object, made faster."""
    c: Candidate = _new(Candidate)
    _c_invoice(c, invoice_id)
    _c_score(c, score)
    _c_rule(c, rule)
    _c_reason(c, reason)
    return c
