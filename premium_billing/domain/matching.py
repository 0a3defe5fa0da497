"""Automated reconciliation: match one incoming payment to open invoices.

Pure functions and frozen dataclasses; no framework imports. The index is built once per run
(`CandidateIndex.build`) and then `match_payment` is called for every payment.

Rules, in order of confidence (DESIGN.md, "Automated reconciliation"):
  1. exact Stripe metadata (`stripe_invoice_id` carries our invoice id or number);
  2. invoice number / RF reference / policy number found in the remittance text (normalised;
     one typo or adjacent transposition tolerated);
  3. a payer already linked (bank account or normalised name) with an exact amount;
  4. fuzzy payer name (rapidfuzz) with an exact amount;
  5. one payment equal to the sum of several open invoices of one policyholder;
  6. partial payments (oldest invoice first) and overpayments (rest to credit);
  7. an underpayment within tolerance, the rest written off.
Corroboration: a reference match auto-posts only when the payer or the amount agrees; a fuzzy
reference only when exactly one candidate is corroborated; a payer-only match only with an
exact amount. Never across currencies; ambiguity goes to suspense with ranked candidates.

Money invariant of every matched or partial decision:
  sum(allocations) + credit == payment.amount, and for each invoice
  allocation + write_off <= amount_due (== for a settled invoice).
Write-offs are not money received: they close the gap of a short payment within tolerance.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from fractions import Fraction
from itertools import combinations
from typing import Literal

from rapidfuzz import fuzz

from .money import scale

Outcome = Literal["matched", "partial", "suspense", "duplicate", "return"]


# --------------------------------------------------------------------------- inputs / outputs


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
    id: str
    number: str
    payment_reference: str
    policy_number: str
    policyholder_id: str
    currency: str
    amount_due: int
    due_date: date


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
    auto_threshold: float = 0.90
    tolerance_abs: int = 100
    tolerance_pct: Fraction = Fraction(1, 100)
    duplicate_window_days: int = 2
    # A payer-only (name) match is refused when this many policyholders or more carry a name
    # that scores above the threshold: an exact amount is then too likely by chance.
    max_name_candidates: int = 25
    # The best candidate must beat the runner-up by this much to be unambiguous.
    ambiguity_margin: float = 0.03
    max_candidates: int = 5


@dataclass(frozen=True, slots=True)
class Candidate:
    invoice_id: str
    score: float
    rule: str


@dataclass(frozen=True, slots=True)
class MatchDecision:
    payment_id: str
    outcome: Outcome
    policyholder_id: str | None = None
    allocations: tuple[tuple[str, int], ...] = ()
    credit: int = 0
    write_offs: tuple[tuple[str, int], ...] = ()
    rule: str = ""
    score: float = 0.0
    evidence: dict[str, str] = field(default_factory=dict)
    candidates: tuple[Candidate, ...] = ()


# --------------------------------------------------------------------------- normalisation

_RUNS = re.compile(r"[0-9A-Z]+")
_NON_ALNUM = re.compile(r"[^0-9A-Z]+")
_WORDS = re.compile(r"[A-Z0-9]+")
_TITLES = frozenset({"MR", "MRS", "MS", "MISS", "MX", "DR", "PROF", "SIR", "DAME", "REV"})
_SUFFIXES = frozenset(
    {
        "LTD", "LIMITED", "LLC", "INC", "INCORPORATED", "GMBH", "CO", "CORP", "CORPORATION",
        "PLC", "LLP", "AG", "SA", "SARL", "BV", "NV", "COMPANY", "THE",
    }
)  # fmt: skip


def normalize_account(account: str) -> str:
    """A bank account or IBAN as a lookup key: upper case, letters and digits only."""
    return _NON_ALNUM.sub("", account.upper())


def name_tokens(name: str) -> tuple[str, ...]:
    """Upper-case words of a person or company name, without titles and company suffixes."""
    words = _WORDS.findall(name.upper().replace("&", " AND "))
    kept = [w for w in words if w not in _TITLES and w not in _SUFFIXES]
    return tuple(kept) if kept else tuple(words)


def normalize_name(name: str) -> str:
    """A payer name as a lookup key: tokens sorted, joined by one space."""
    return " ".join(sorted(name_tokens(name)))


def name_similarity(payer: Sequence[str], holder: Sequence[str]) -> float:
    """0..1 similarity of two token lists; initials, reordering, titles and suffixes allowed.

    An initial ("J") matches a word with that first letter at a small discount; each other
    token takes its best rapidfuzz ratio among the holder's unused tokens. Holder tokens the
    payer left out (a middle name) cost a little.
    """
    if not payer or not holder:
        return 0.0
    if sorted(payer) == sorted(holder):
        return 1.0
    unused = list(holder)
    total = 0.0
    full_tokens = 0
    # Full words first so an initial cannot take the word a full token needs.
    for token in sorted(payer, key=len, reverse=True):
        best_i, best = -1, 0.0
        for i, other in enumerate(unused):
            if len(token) == 1:
                s = 0.96 if other[0] == token else 0.0
            else:
                s = fuzz.ratio(token, other) / 100.0
            if s > best:
                best_i, best = i, s
        if best_i >= 0:
            unused.pop(best_i)
        total += best
        full_tokens += len(token) > 1
    if full_tokens == 0:
        return 0.0
    score = total / len(payer)
    return max(0.0, score - 0.04 * len(unused))


def _block_keys(tokens: Sequence[str]) -> set[str]:
    """Blocking keys of a name: (initial of one word | another whole word) for every pair, or
    the one word of a single-word name. "J Smith", "Smith John" and "John Smith" share
    "J|SMITH"."""
    words = [t for t in tokens if len(t) > 1]
    if len(tokens) == 1:
        return {"|" + tokens[0]}
    keys = set()
    for i, a in enumerate(tokens):
        for j, b in enumerate(tokens):
            if i != j and len(b) > 1:
                keys.add(a[0] + "|" + b)
    if not keys and words:
        keys.add("|" + words[0])
    return keys


# --------------------------------------------------------------------------- the index


class _KeyFamily:
    """Exact and one-edit lookups over a family of keys (invoice numbers, RF, policy numbers).

    The one-edit lookup generates the substitution, insertion, deletion and adjacent
    transposition variants of a query string and looks each up exactly; per-length,
    per-position alphabets of the stored keys prune variants that cannot exist, so a
    structured key space costs tens of lookups per query, not thousands.
    """

    __slots__ = ("keys", "alphabets", "min_len", "max_len")

    def __init__(self) -> None:
        self.keys: dict[str, object] = {}
        self.alphabets: dict[int, list[set[str]]] = {}
        self.min_len = 10**9
        self.max_len = 0

    def add(self, key: str, value: object) -> None:
        self.keys[key] = value
        n = len(key)
        alph = self.alphabets.get(n)
        if alph is None:
            alph = [set() for _ in range(n)]
            self.alphabets[n] = alph
            self.min_len = min(self.min_len, n)
            self.max_len = max(self.max_len, n)
        for i, ch in enumerate(key):
            alph[i].add(ch)

    def finish(self) -> None:
        self.alphabets = {n: [set(sorted(a)) for a in al] for n, al in self.alphabets.items()}

    def one_edit(self, s: str) -> Iterator[str]:
        """Stored keys at edit distance exactly 1 (incl. adjacent transposition) from `s`."""
        keys = self.keys
        n = len(s)
        seen: set[str] = set()
        # Same length: substitution or transposition.
        alph = self.alphabets.get(n)
        if alph is not None:
            bad = [i for i in range(n) if s[i] not in alph[i]]
            if len(bad) <= 1:
                positions = bad if bad else range(n)
                for i in positions:
                    head, tail = s[:i], s[i + 1 :]
                    for ch in alph[i]:
                        if ch != s[i]:
                            v = head + ch + tail
                            if v in keys and v not in seen:
                                seen.add(v)
                                yield v
            if len(bad) <= 2:
                for i in range(n - 1):
                    if s[i] != s[i + 1] and all(b in (i, i + 1) for b in bad):
                        v = s[:i] + s[i + 1] + s[i] + s[i + 2 :]
                        if v in keys and v not in seen:
                            seen.add(v)
                            yield v
        # Stored key one longer: the query lost a character (insert one).
        alph = self.alphabets.get(n + 1)
        if alph is not None:
            ok_prefix = _fits_prefix(s, alph, 0)
            ok_suffix = _fits_suffix(s, alph, 1)
            for i in range(n + 1):
                if ok_prefix[i] and ok_suffix[i]:
                    head, tail = s[:i], s[i:]
                    for ch in alph[i]:
                        v = head + ch + tail
                        if v in keys and v not in seen:
                            seen.add(v)
                            yield v
        # Stored key one shorter: the query has an extra character (delete one).
        alph = self.alphabets.get(n - 1)
        if alph is not None and n > 1:
            ok_prefix = _fits_prefix(s, alph, 0)
            ok_suffix = _fits_suffix(s[1:], alph, 0)
            for i in range(n):
                # s[:i] fits alph[:i] and s[i+1:] fits alph[i:]
                if ok_prefix[i] and ok_suffix[i]:
                    v = s[:i] + s[i + 1 :]
                    if v in keys and v not in seen:
                        seen.add(v)
                        yield v


def _fits_prefix(s: str, alph: list[set[str]], offset: int) -> list[bool]:
    """ok[i] is True when s[:i] fits alph[offset : offset + i]."""
    ok = [True]
    good = True
    for i, ch in enumerate(s):
        j = i + offset
        good = good and j < len(alph) and ch in alph[j]
        ok.append(good)
    return ok


def _fits_suffix(s: str, alph: list[set[str]], offset: int) -> list[bool]:
    """ok[i] is True when s[i:] fits alph[i + offset :] (position by position)."""
    n = len(s)
    ok = [True] * (n + 1)
    good = True
    for i in range(n - 1, -1, -1):
        j = i + offset
        good = good and j < len(alph) and s[i] in alph[j]
        ok[i] = good
    return ok


@dataclass(frozen=True, slots=True)
class _Hit:
    invoices: tuple[OpenInvoice, ...]
    kind: str  # "invoice_number" | "rf_reference" | "policy_number"
    text: str  # as found in the remittance text (normalised)
    key: str  # the stored key it matched
    distance: int


class CandidateIndex:
    """Lookups over one snapshot of open invoices, policyholders and learned payer links."""

    def __init__(self) -> None:
        self.invoices: dict[str, OpenInvoice] = {}
        self.holders: dict[str, Policyholder] = {}
        self.holder_tokens: dict[str, tuple[str, ...]] = {}
        self.by_holder: dict[str, tuple[OpenInvoice, ...]] = {}
        self.numbers = _KeyFamily()
        self.rfs = _KeyFamily()
        self.policies = _KeyFamily()
        self.name_blocks: dict[str, list[str]] = {}
        self.full_names: dict[str, list[str]] = {}
        self.links: dict[str, str | None] = {}
        self.currencies: set[str] = set()
        self.min_len = 0
        self.max_len = 0

    @classmethod
    def build(
        cls,
        invoices: Iterable[OpenInvoice],
        policyholders: Iterable[Policyholder],
        payer_links: Iterable[PayerLink] = (),
    ) -> CandidateIndex:
        index = cls()
        by_holder: dict[str, list[OpenInvoice]] = {}
        by_policy: dict[str, list[OpenInvoice]] = {}
        for inv in invoices:
            index.invoices[inv.id] = inv
            index.currencies.add(inv.currency)
            by_holder.setdefault(inv.policyholder_id, []).append(inv)
            index.numbers.add(_compact(inv.number), inv)
            index.rfs.add(_compact(inv.payment_reference), inv)
            by_policy.setdefault(_compact(inv.policy_number), []).append(inv)
        order = _age_key
        index.by_holder = {k: tuple(sorted(v, key=order)) for k, v in by_holder.items()}
        for key, invs in by_policy.items():
            index.policies.add(key, tuple(sorted(invs, key=order)))
        for fam in (index.numbers, index.rfs, index.policies):
            fam.finish()
        for holder in policyholders:
            index.holders[holder.id] = holder
            tokens = name_tokens(holder.name)
            index.holder_tokens[holder.id] = tokens
            for key in _block_keys(tokens):
                index.name_blocks.setdefault(key, []).append(holder.id)
            index.full_names.setdefault(" ".join(sorted(tokens)), []).append(holder.id)
        for link in payer_links:
            key = link.key
            if key in index.links and index.links[key] != link.policyholder_id:
                index.links[key] = None  # one key, two policyholders: not evidence
            else:
                index.links[key] = link.policyholder_id
        fams = [f for f in (index.numbers, index.rfs, index.policies) if f.keys]
        index.min_len = min((f.min_len for f in fams), default=0)
        index.max_len = max((f.max_len for f in fams), default=0)
        return index

    # -- reference search ------------------------------------------------------------------

    def _candidate_strings(self, text: str) -> list[str]:
        """Letters-and-digits runs of the text and joins of up to 8 neighbouring runs whose
        length could be a key (one edit allowed) and that hold a digit."""
        runs = _RUNS.findall(text.upper())
        lo, hi = self.min_len - 1, self.max_len + 1
        out: list[str] = []
        n = len(runs)
        for i in range(n):
            s = ""
            digit = False
            for j in range(i, min(i + 8, n)):
                run = runs[j]
                s += run
                if len(s) > hi:
                    break
                digit = digit or not run.isalpha()
                if digit and len(s) >= lo:
                    out.append(s)
        return out

    def find_references(self, text: str, fuzzy: bool) -> list[_Hit]:
        hits: list[_Hit] = []
        seen: set[tuple[str, str]] = set()
        families = (
            (self.rfs, "rf_reference"),
            (self.numbers, "invoice_number"),
            (self.policies, "policy_number"),
        )
        for s in self._candidate_strings(text):
            for fam, kind in families:
                if not fuzzy:
                    if len(s) not in fam.alphabets:
                        continue
                    value = fam.keys.get(s)
                    if value is not None and (kind, s) not in seen:
                        seen.add((kind, s))
                        hits.append(_Hit(_as_tuple(value), kind, s, s, 0))
                elif fam.min_len - 1 <= len(s) <= fam.max_len + 1:
                    for key in fam.one_edit(s):
                        if (kind, key) not in seen:
                            seen.add((kind, key))
                            hits.append(_Hit(_as_tuple(fam.keys[key]), kind, s, key, 1))
        return hits

    def link_for(self, payment: PaymentFacts) -> tuple[str, str] | None:
        """(policyholder id, evidence kind) of a learned payer link, account first."""
        if payment.payer_account:
            ph = self.links.get(normalize_account(payment.payer_account))
            if ph:
                return ph, "payer_account"
        if payment.payer_name:
            ph = self.links.get(normalize_name(payment.payer_name))
            if ph:
                return ph, "payer_name"
        return None

    def name_candidates(self, tokens: Sequence[str]) -> tuple[list[str], int]:
        """Policyholders whose name may be the payer's, and how many such names there are.

        A full name looks up its exact normalised form (reordering, titles and suffixes are
        normalised away); a name with initials takes the smallest block it falls in.
        """
        if all(len(t) > 1 for t in tokens):
            exact = self.full_names.get(" ".join(sorted(tokens)), [])
            if exact:
                return exact, len(exact)
        blocks = [self.name_blocks.get(k, []) for k in _block_keys(tokens)]
        smallest = min(blocks, key=len, default=[])
        return smallest, len(smallest)


def _compact(text: str) -> str:
    return _NON_ALNUM.sub("", text.upper())


def _as_tuple(value: object) -> tuple[OpenInvoice, ...]:
    if isinstance(value, OpenInvoice):
        return (value,)
    assert isinstance(value, tuple)
    return value


def _age_key(inv: OpenInvoice) -> tuple[date, str, str]:
    return (inv.due_date, inv.number, inv.id)


# --------------------------------------------------------------------------- allocation plans


@dataclass(frozen=True, slots=True)
class _Plan:
    holder: str
    allocations: tuple[tuple[str, int], ...]
    write_offs: tuple[tuple[str, int], ...]
    credit: int
    outcome: Outcome
    how: str  # "exact" | "several" | "tolerance" | "partial" | "overpayment"


def _exact_plan(
    amount: int, holder: str, pool: Sequence[OpenInvoice], required: Sequence[OpenInvoice] = ()
) -> _Plan | None:
    """Invoices of `pool` (oldest first) that the amount pays exactly, including `required`."""
    req_ids = {i.id for i in required}
    req_sum = sum(i.amount_due for i in required)
    if required and req_sum == amount:
        chosen: Sequence[OpenInvoice] = sorted(required, key=_age_key)
        return _full(holder, chosen, "exact" if len(chosen) == 1 else "several")
    rest = [i for i in pool if i.id not in req_ids]
    target = amount - req_sum
    if target <= 0:
        return None
    if not required:
        for inv in rest:  # one invoice, the oldest with that amount
            if inv.amount_due == target:
                return _full(holder, [inv], "exact")
    total = 0
    for k, inv in enumerate(rest):  # the oldest k invoices
        total += inv.amount_due
        if total == target:
            return _full(holder, sorted([*required, *rest[: k + 1]], key=_age_key), "several")
        if total > target:
            break
    if len(rest) <= 12:  # any two or three of a few invoices, oldest combination first
        for size in (2, 3):
            for combo in combinations(rest, size):
                if sum(i.amount_due for i in combo) == target:
                    chosen = sorted([*required, *combo], key=_age_key)
                    return _full(holder, chosen, "several")
    return None


def _covering_prefix(pool: Sequence[OpenInvoice], amount: int) -> Sequence[OpenInvoice]:
    """The oldest invoices of `pool` that the amount reaches into (all when it covers all)."""
    total = 0
    for k, inv in enumerate(pool):
        total += inv.amount_due
        if total >= amount:
            return pool[: k + 1]
    return pool


def _full(holder: str, invoices: Sequence[OpenInvoice], how: str) -> _Plan:
    allocs = tuple((i.id, i.amount_due) for i in invoices)
    return _Plan(holder, allocs, (), 0, "matched", how)


def _tolerance(due: int, settings: MatchSettings) -> int:
    pct = scale(due, settings.tolerance_pct.numerator, settings.tolerance_pct.denominator)
    return max(settings.tolerance_abs, pct)


def _spread_plan(
    amount: int, holder: str, invoices: Sequence[OpenInvoice], settings: MatchSettings
) -> _Plan:
    """Oldest first; an overpayment leaves credit, a short payment within tolerance is written
    off on the last invoice, a larger shortfall leaves the payment partial."""
    ordered = sorted(invoices, key=_age_key)
    due = sum(i.amount_due for i in ordered)
    if amount >= due:
        allocs = tuple((i.id, i.amount_due) for i in ordered)
        how = "exact" if amount == due else "overpayment"
        return _Plan(holder, allocs, (), amount - due, "matched", how)
    short = due - amount
    allocations: list[tuple[str, int]] = []
    left = amount
    for inv in ordered:
        if left <= 0:
            break
        part = min(left, inv.amount_due)
        allocations.append((inv.id, part))
        left -= part
    if short <= _tolerance(due, settings):
        # Everything is settled: the shortfall is written off where it fell short.
        write_offs: list[tuple[str, int]] = []
        paid = dict(allocations)
        for inv in ordered:
            gap = inv.amount_due - paid.get(inv.id, 0)
            if gap:
                write_offs.append((inv.id, gap))
        return _Plan(holder, tuple(allocations), tuple(write_offs), 0, "matched", "tolerance")
    return _Plan(holder, tuple(allocations), (), 0, "partial", "partial")


# --------------------------------------------------------------------------- matching


@dataclass(slots=True)
class _Option:
    score: float
    plan: _Plan | None
    rule: str
    evidence: dict[str, str]
    invoice_ids: tuple[str, ...]


def _payer_score(
    payment: PaymentFacts,
    holder: str,
    index: CandidateIndex,
    payer_tokens: tuple[str, ...],
    link: tuple[str, str] | None,
) -> float:
    if link is not None and link[0] == holder:
        return 1.0
    tokens = index.holder_tokens.get(holder)
    if not tokens or not payer_tokens:
        return 0.0
    return name_similarity(payer_tokens, tokens)


def _is_duplicate(
    payment: PaymentFacts, recent: Iterable[PaymentFacts], settings: MatchSettings
) -> PaymentFacts | None:
    keys: tuple[str, str, str] | None = None
    for other in recent:
        if other.id == payment.id or other.is_return:
            continue
        if other.amount != payment.amount or other.currency != payment.currency:
            continue
        if abs((payment.received_on - other.received_on).days) > settings.duplicate_window_days:
            continue
        if keys is None:  # normalise only when a payment of this amount is that recent
            keys = (
                _compact(payment.reference),
                normalize_account(payment.payer_account or ""),
                normalize_name(payment.payer_name or ""),
            )
        ref, account, name = keys
        if _compact(other.reference) != ref:
            continue
        same_account = bool(account) and normalize_account(other.payer_account or "") == account
        same_name = bool(name) and normalize_name(other.payer_name or "") == name
        same_stripe = bool(payment.stripe_invoice_id) and (
            other.stripe_invoice_id == payment.stripe_invoice_id
        )
        if same_account or same_name or same_stripe:
            return other
    return None


def _ranked(options: Iterable[_Option], limit: int) -> tuple[Candidate, ...]:
    best: dict[str, Candidate] = {}
    for opt in options:
        for inv_id in opt.invoice_ids:
            cur = best.get(inv_id)
            if cur is None or opt.score > cur.score:
                best[inv_id] = Candidate(inv_id, round(opt.score, 4), opt.rule)
    ranked = sorted(best.values(), key=lambda c: (-c.score, c.invoice_id))
    return tuple(ranked[:limit])


def _decide(
    payment: PaymentFacts,
    options: list[_Option],
    settings: MatchSettings,
    everything: list[_Option],
) -> MatchDecision | None:
    """The single best auto-postable option, or None when there is none or it is ambiguous."""
    postable = [o for o in options if o.plan is not None and o.score >= settings.auto_threshold]
    if not postable:
        return None
    postable.sort(key=lambda o: -o.score)
    best = postable[0]
    assert best.plan is not None
    for other in postable[1:]:
        assert other.plan is not None
        if other.plan.holder != best.plan.holder or other.plan != best.plan:
            if best.score - other.score < settings.ambiguity_margin:
                return None
            break
    plan = best.plan
    return MatchDecision(
        payment_id=payment.id,
        outcome=plan.outcome,
        policyholder_id=plan.holder,
        allocations=plan.allocations,
        credit=plan.credit,
        write_offs=plan.write_offs,
        rule=best.rule,
        score=round(best.score, 4),
        evidence=dict(best.evidence, allocation=plan.how),
        candidates=_ranked(everything, settings.max_candidates),
    )


def _reference_options(
    payment: PaymentFacts,
    hits: list[_Hit],
    index: CandidateIndex,
    settings: MatchSettings,
    payer_tokens: tuple[str, ...],
    link: tuple[str, str] | None,
) -> list[_Option]:
    """One option per policyholder named by the references found in the text."""
    groups: dict[str, tuple[list[OpenInvoice], list[OpenInvoice], list[_Hit]]] = {}
    for hit in hits:
        for inv in hit.invoices:
            if inv.currency != payment.currency:
                continue  # never across currencies
            direct, pool, found = groups.setdefault(inv.policyholder_id, ([], [], []))
            target = direct if hit.kind != "policy_number" else pool
            if all(i.id != inv.id for i in target):
                target.append(inv)
            if hit not in found:
                found.append(hit)
    options: list[_Option] = []
    amount = payment.amount
    for holder, (direct, pool, found) in groups.items():
        fuzzy = any(h.distance for h in found)
        kinds = sorted({h.kind for h in found})
        payer = _payer_score(payment, holder, index, payer_tokens, link)
        payer_agrees = payer >= settings.auto_threshold
        holder_invoices = [
            i for i in index.by_holder.get(holder, ()) if i.currency == payment.currency
        ]
        plan: _Plan | None = None
        if direct:
            plan = _exact_plan(amount, holder, holder_invoices, direct)
        else:
            plan = _exact_plan(amount, holder, pool)
            if plan is None:
                plan = _exact_plan(amount, holder, holder_invoices, ())
                if plan is not None and not {a for a, _ in plan.allocations} & {i.id for i in pool}:
                    plan = None
        amount_agrees = plan is not None
        if plan is None:
            targets = direct if direct else _covering_prefix(pool, amount)
            spread = _spread_plan(amount, holder, targets, settings)
            if spread.how == "tolerance" and not fuzzy:
                plan, amount_agrees = spread, True
            elif payer_agrees:
                plan = spread
        checked = "rf_reference" in kinds  # check digits: a typo cannot land on another RF
        if fuzzy:
            base = 0.95 if checked else 0.93
        else:
            base = 0.99 if (checked or "invoice_number" in kinds) else 0.97
        # A payer name that is given and clearly someone else's contradicts the reference.
        contradicts = (bool(payer_tokens) and payer < 0.6) or (
            link is not None and link[0] != holder
        )
        has_payer = bool(payer_tokens) or link is not None
        if amount_agrees and payer_agrees:
            score = base
        elif payer_agrees:
            score = base - 0.02
        elif amount_agrees and not contradicts and not (fuzzy and has_payer and not checked):
            # A corrected plain number is corroborated by the amount alone only when no payer
            # is known at all: premiums repeat, a neighbouring number often has the same one.
            score = base - 0.02
        elif amount_agrees and checked and not fuzzy:
            score = base - 0.04  # the check digits vouch for the reference: a third party paid
        else:
            score = 0.45 if fuzzy else 0.5
        if plan is None:
            score = min(score, 0.6)
        first = found[0]
        evidence = {
            "reference": first.key,
            "reference_kind": first.kind,
            "found_in": "remittance text",
            "text": first.text,
            "edit_distance": str(max(h.distance for h in found)),
            "amount_agrees": str(amount_agrees).lower(),
            "payer_agrees": str(payer_agrees).lower(),
            "payer_score": f"{payer:.2f}",
        }
        if len(found) > 1:
            evidence["references"] = " ".join(sorted({h.key for h in found}))
        rule = ("fuzzy_" if fuzzy else "") + ("policy_number" if not direct else "reference")
        ids = tuple(i.id for i in (direct or pool))
        options.append(_Option(score, plan, rule, evidence, ids))
    return options


def _fast_exact(
    payment: PaymentFacts,
    hits: list[_Hit],
    index: CandidateIndex,
    settings: MatchSettings,
    payer_tokens: tuple[str, ...],
    link: tuple[str, str] | None,
) -> MatchDecision | None:
    """The common case in a few steps: one exact invoice number or RF reference, same
    currency, exact amount, payer agrees. Same decision as the general path gives."""
    if len(hits) != 1:
        return None
    hit = hits[0]
    if hit.kind == "policy_number" or len(hit.invoices) != 1:
        return None
    inv = hit.invoices[0]
    if inv.currency != payment.currency or inv.amount_due != payment.amount:
        return None
    holder = inv.policyholder_id
    payer = _payer_score(payment, holder, index, payer_tokens, link)
    if payer < settings.auto_threshold:
        return None
    evidence = {
        "reference": hit.key,
        "reference_kind": hit.kind,
        "found_in": "remittance text",
        "text": hit.text,
        "edit_distance": "0",
        "amount_agrees": "true",
        "payer_agrees": "true",
        "payer_score": f"{payer:.2f}",
        "allocation": "exact",
    }
    return MatchDecision(
        payment_id=payment.id,
        outcome="matched",
        policyholder_id=holder,
        allocations=((inv.id, inv.amount_due),),
        rule="reference",
        score=0.99,
        evidence=evidence,
        candidates=(Candidate(inv.id, 0.99, "reference"),),
    )


def _corroborated_single(options: list[_Option], settings: MatchSettings) -> list[_Option]:
    """A fuzzy reference posts only when exactly one candidate is corroborated.

    A candidate whose amount agrees outranks those that only share the payer; the same
    invoice found through two keys (RF and number) is one candidate.
    """
    good = [o for o in options if o.plan is not None and o.score >= settings.auto_threshold]
    agreeing = [o for o in good if o.evidence.get("amount_agrees") == "true"]
    good = agreeing or good
    by_holder: dict[str, list[_Option]] = {}
    for o in good:
        assert o.plan is not None
        by_holder.setdefault(o.plan.holder, []).append(o)
    kept: list[_Option] = []
    for opts in by_holder.values():
        agreeing = [o for o in opts if o.evidence.get("amount_agrees") == "true"]
        kept.extend(agreeing or opts)
    plans = {o.plan for o in kept}
    if len(plans) != 1:
        return []
    return [max(kept, key=lambda o: o.score)]


def match_payment(
    payment: PaymentFacts,
    index: CandidateIndex,
    settings: MatchSettings | None = None,
    recent_payments: Iterable[PaymentFacts] = (),
) -> MatchDecision:
    """Decide what one payment pays. Pure: the index and the inputs are not changed."""
    settings = settings or MatchSettings()
    if payment.is_return:
        return MatchDecision(
            payment.id, "return", rule="return", score=1.0,
            evidence={"reason": "return or reversal: never matched as new money"},
        )  # fmt: skip
    original = _is_duplicate(payment, recent_payments, settings)
    if original is not None:
        return MatchDecision(
            payment.id, "duplicate", rule="duplicate", score=1.0,
            evidence={
                "duplicate_of": original.id,
                "window_days": str(settings.duplicate_window_days),
            },
        )  # fmt: skip
    if payment.amount <= 0 or payment.currency not in index.currencies:
        reason = "no amount" if payment.amount <= 0 else "no open invoice in this currency"
        return MatchDecision(payment.id, "suspense", rule="none", evidence={"reason": reason})

    everything: list[_Option] = []
    # Invoices the remittance text points at (any currency). A payer-only match that
    # disagrees with them is contradicted by the text and does not auto-post.
    referenced: set[str] = set()
    link = index.link_for(payment)
    payer_tokens = name_tokens(payment.payer_name) if payment.payer_name else ()

    # 1. Stripe metadata.
    if payment.stripe_invoice_id:
        inv = index.invoices.get(payment.stripe_invoice_id) or _as_single(
            index.numbers.keys.get(_compact(payment.stripe_invoice_id))
        )
        if inv is not None and inv.currency == payment.currency:
            plan = _exact_plan(payment.amount, inv.policyholder_id, (), [inv])
            plan = plan or _spread_plan(payment.amount, inv.policyholder_id, [inv], settings)
            evidence = {"stripe_invoice_id": payment.stripe_invoice_id, "found_in": "metadata"}
            option = _Option(1.0, plan, "stripe_metadata", evidence, (inv.id,))
            decision = _decide(payment, [option], settings, [option])
            if decision is not None:
                return decision

    # 2. References in the remittance text, exact first, then one edit away.
    if payment.reference:
        exact = index.find_references(payment.reference, fuzzy=False)
        referenced.update(i.id for h in exact for i in h.invoices)
        fast = _fast_exact(payment, exact, index, settings, payer_tokens, link)
        if fast is not None:
            return fast
        options = _reference_options(payment, exact, index, settings, payer_tokens, link)
        everything.extend(options)
        decision = _decide(payment, options, settings, everything)
        if decision is not None:
            return decision
        if not any(o.plan is not None and o.score >= settings.auto_threshold for o in options):
            fuzzy = index.find_references(payment.reference, fuzzy=True)
            exact_keys = {h.key for h in exact}
            fuzzy = [h for h in fuzzy if h.key not in exact_keys]
            options = []
            for hit in fuzzy:
                options += _reference_options(payment, [hit], index, settings, payer_tokens, link)
            if exact:
                # The text holds a valid reference that did not corroborate: a corrected one
                # overrides it only when both the payer and the amount agree.
                options = [
                    o
                    for o in options
                    if o.evidence.get("amount_agrees") == "true"
                    and o.evidence.get("payer_agrees") == "true"
                ] + [o for o in options if o.score < settings.auto_threshold]
            everything.extend(options)
            referenced.update(
                i for o in options if o.score >= settings.auto_threshold for i in o.invoice_ids
            )
            decision = _decide(payment, _corroborated_single(options, settings), settings,
                               everything)  # fmt: skip
            if decision is not None:
                return decision

    # 3. A learned payer link, exact amount only.
    if link is not None:
        holder, kind = link
        pool = [i for i in index.by_holder.get(holder, ()) if i.currency == payment.currency]
        plan = _exact_plan(payment.amount, holder, pool)
        score = 0.97 if kind == "payer_account" else 0.94
        evidence = {kind: "linked", "found_in": kind.replace("_", " ")}
        if plan is not None and _contradicted(plan, referenced):
            score = 0.6
            evidence["contradicted_by"] = "reference in remittance text"
        option = _Option(score if plan else 0.6, plan, "linked_payer", evidence,
                         tuple(i.id for i in pool))  # fmt: skip
        everything.append(option)
        decision = _decide(payment, [option], settings, everything)
        if decision is not None:
            return decision

    # 4./5. Fuzzy payer name with an exact amount (one invoice or several).
    if payer_tokens:
        options = []
        candidates, close = index.name_candidates(payer_tokens)
        if close < settings.max_name_candidates:
            for holder in candidates:
                pool = [
                    i for i in index.by_holder.get(holder, ()) if i.currency == payment.currency
                ]
                if not pool:
                    continue
                s = name_similarity(payer_tokens, index.holder_tokens[holder])
                if s < 0.8:
                    continue
                plan = _exact_plan(payment.amount, holder, pool)
                evidence = {
                    "payer_name": payment.payer_name or "",
                    "policyholder_name": index.holders[holder].name,
                    "name_score": f"{s:.2f}",
                    "similar_names": str(close),
                }
                score = min(0.97, s) if plan is not None else 0.5 * s
                if plan is not None and _contradicted(plan, referenced):
                    score = min(score, 0.6)
                    evidence["contradicted_by"] = "reference in remittance text"
                ids = tuple(a for a, _ in plan.allocations) if plan else tuple(i.id for i in pool)
                options.append(_Option(score, plan, "payer_name", evidence, ids))
        everything.extend(options)
        decision = _decide(payment, options, settings, everything)
        if decision is not None:
            return decision

    return MatchDecision(
        payment.id,
        "suspense",
        rule="none",
        score=round(max((o.score for o in everything), default=0.0), 4),
        evidence={"reason": "no corroborated, unambiguous candidate"},
        candidates=_ranked(everything, settings.max_candidates),
    )


def _contradicted(plan: _Plan, referenced: set[str]) -> bool:
    """The text points at invoices and the plan pays none of them."""
    return bool(referenced) and not any(i in referenced for i, _ in plan.allocations)


def _as_single(value: object) -> OpenInvoice | None:
    return value if isinstance(value, OpenInvoice) else None
