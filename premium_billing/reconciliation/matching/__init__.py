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

Speed (about a million payments against a million open invoices on one core): everything that
depends only on the invoices is computed once in `build` (compact keys, per-position alphabets
of each key length, age-ordered pools per policyholder, name tokens per distinct name); a
payment's text is cut into candidate strings only of lengths a key can have; the one-edit
lookup first rejects strings with two characters no key uses; the common case (one exact
reference, exact amount, payer agrees) is decided without building any option.
"""

from __future__ import annotations

import gc
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import date
from fractions import Fraction
from functools import lru_cache
from operator import attrgetter
from typing import Literal, NamedTuple

from rapidfuzz import fuzz

from premium_billing.money import scale

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


_DEFAULT_SETTINGS = MatchSettings()

# MatchDecision and Candidate made field by field through their slots: a frozen dataclass's
# __init__ sets each field through object.__setattr__, half the cost of a decision.
_DECISION_FIELDS = (
    "payment_id", "outcome", "policyholder_id", "allocations", "credit", "write_offs", "rule",
    "score", "evidence", "candidates",
)  # fmt: skip
_CANDIDATE_FIELDS = ("invoice_id", "score", "rule")
if (
    tuple(f.name for f in fields(MatchDecision)) != _DECISION_FIELDS
    or tuple(f.name for f in fields(Candidate)) != _CANDIDATE_FIELDS
):
    raise RuntimeError("_decision and _candidate must set every field of their dataclass")
_new = object.__new__
_decision_setters = [getattr(MatchDecision, f).__set__ for f in _DECISION_FIELDS]
(_d_id, _d_outcome, _d_holder, _d_allocations, _d_credit, _d_write_offs, _d_rule, _d_score,
 _d_evidence, _d_candidates) = _decision_setters  # fmt: skip
_c_invoice, _c_score, _c_rule = [getattr(Candidate, f).__set__ for f in _CANDIDATE_FIELDS]


def _decision(
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


def _candidate(invoice_id: str, score: float, rule: str) -> Candidate:
    """Candidate(invoice_id, score, rule): the same object, made faster."""
    c: Candidate = _new(Candidate)
    _c_invoice(c, invoice_id)
    _c_score(c, score)
    _c_rule(c, rule)
    return c


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
_DROPPED = _TITLES | _SUFFIXES


def _compact(text: str) -> str:
    """Upper case, letters and digits (A-Z, 0-9) only. The regular expression runs only when
    something other than a space or a dash has to go."""
    u = text.upper()
    if u.isascii() and u.isalnum():
        return u
    u = u.replace("-", "").replace(" ", "")
    if u.isascii() and u.isalnum():
        return u
    return _NON_ALNUM.sub("", u)


def normalize_account(account: str) -> str:
    """A bank account or IBAN as a lookup key: upper case, letters and digits only."""
    return _compact(account)


def name_tokens(name: str) -> tuple[str, ...]:
    """Upper-case words of a person or company name, without titles and company suffixes."""
    words = _WORDS.findall(name.upper().replace("&", " AND "))
    kept = [w for w in words if w not in _DROPPED]
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
    ratio = fuzz.ratio
    # Full words first so an initial cannot take the word a full token needs.
    for token in sorted(payer, key=len, reverse=True):
        best_i, best = -1, 0.0
        if len(token) == 1:
            for i, other in enumerate(unused):
                if other[0] == token:
                    best_i, best = i, 0.96
                    break
        else:
            full_tokens += 1
            for i, other in enumerate(unused):
                s = 1.0 if other == token else ratio(token, other) / 100.0
                if s > best:
                    best_i, best = i, s
                    if s == 1.0:
                        break
        if best_i >= 0:
            unused.pop(best_i)
        total += best
    if full_tokens == 0:
        return 0.0
    score = total / len(payer)
    return max(0.0, score - 0.04 * len(unused))


@lru_cache(maxsize=1 << 16)
def _similarity(payer: tuple[str, ...], holder: tuple[str, ...]) -> float:
    """`name_similarity`, remembered: payers and policyholders share a few thousand names."""
    return name_similarity(payer, holder)


def _may_agree(payer: tuple[str, ...], holder: tuple[str, ...] | None, threshold: float) -> bool:
    """False only when `name_similarity(payer, holder) < threshold` for certain, cheaply.

    The similarity is the mean of per-token scores (each at most 1) less a penalty, so each
    payer token needs a score of at least 1 - (1 - threshold) * len(payer) with some holder
    token; the longest payer token is tried alone. A payer of initials only scores 0.
    """
    if not holder or not payer:
        return False
    token = max(payer, key=len)
    if len(token) == 1:
        return False
    need = 100.0 * (1.0 - (1.0 - threshold) * len(payer)) - 1e-6
    if need <= 0.0:
        return True
    ratio = fuzz.ratio
    return any(ratio(token, other) >= need for other in holder)


@lru_cache(maxsize=1 << 16)
def _normalized_name(name: str) -> str:
    """`normalize_name`, remembered: the duplicate guard compares each payment with its
    window."""
    return normalize_name(name)


@lru_cache(maxsize=1 << 16)
def _compact_reference(text: str) -> str:
    """`_compact`, remembered: the duplicate guard compares each payment with its window."""
    return _compact(text)


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
    structured key space costs tens of lookups per query, not thousands. A query with two
    characters that no key uses at all is rejected before any variant is made.
    """

    __slots__ = ("keys", "alphabets", "charsets", "min_len", "max_len", "foreign")

    def __init__(self) -> None:
        self.keys: dict[str, object] = {}
        # Per key length: the characters used at each position (sorted) and as sets.
        self.alphabets: dict[int, tuple[str, ...]] = {}
        self.charsets: dict[int, tuple[frozenset[str], ...]] = {}
        self.min_len = 10**9
        self.max_len = 0
        self.foreign: re.Pattern[str] | None = None  # any character no key uses

    def add(self, key: str, value: object) -> None:
        self.keys[key] = value

    def finish(self) -> None:
        """Per-length, per-position alphabets of the keys (call once all keys are added)."""
        keys = self.keys
        lengths = set(map(len, keys))
        by_len: dict[int, list[str]] = {}
        if len(lengths) == 1:
            by_len[lengths.pop()] = list(keys)
        else:
            for k in keys:
                by_len.setdefault(len(k), []).append(k)
        used: set[str] = set()
        self.alphabets, self.charsets = {}, {}
        for n, group in by_len.items():
            joined = "".join(group)  # position i of every key: joined[i::n]
            cols = tuple("".join(sorted(set(joined[i::n]))) for i in range(n))
            self.alphabets[n] = cols
            self.charsets[n] = tuple(frozenset(c) for c in cols)
            for col in cols:
                used.update(col)
        self.min_len = min(by_len, default=10**9)
        self.max_len = max(by_len, default=0)
        self.foreign = re.compile("[^" + re.escape("".join(sorted(used))) + "]") if used else None

    def one_edit(self, s: str) -> list[str]:
        """Stored keys at edit distance exactly 1 (incl. adjacent transposition) from `s`."""
        foreign = self.foreign
        if foreign is None:
            return []
        # One edit removes at most one character that no key has.
        m = foreign.search(s)
        if m is not None and foreign.search(s, m.end()) is not None:
            return []
        keys = self.keys
        n = len(s)
        out: list[str] = []
        # Same length: substitution or transposition.
        sets = self.charsets.get(n)
        if sets is not None:
            alph = self.alphabets[n]
            bad = [i for i in range(n) if s[i] not in sets[i]]
            nb = len(bad)
            if nb <= 1:
                for i in bad if nb else range(n):
                    head, tail, c = s[:i], s[i + 1 :], s[i]
                    for ch in alph[i]:
                        if ch != c:
                            v = head + ch + tail
                            if v in keys and v not in out:
                                out.append(v)
            if nb == 0:
                swaps: Iterable[int] = range(n - 1)
            elif nb == 1:
                swaps = [i for i in (bad[0] - 1, bad[0]) if 0 <= i < n - 1]
            elif nb == 2 and bad[1] == bad[0] + 1:
                swaps = (bad[0],)
            else:
                swaps = ()
            for i in swaps:
                a, b = s[i], s[i + 1]
                if a != b:
                    v = s[:i] + b + a + s[i + 2 :]
                    if v in keys and v not in out:
                        out.append(v)
        # Stored key one longer: the query lost a character (insert one).
        sets = self.charsets.get(n + 1)
        if sets is not None:
            alph = self.alphabets[n + 1]
            p = 0  # s[:i] fits the key's positions [:i] for i <= p
            while p < n and s[p] in sets[p]:
                p += 1
            q = n  # s[i:] fits the key's positions [i + 1:] for i >= q
            while q > 0 and s[q - 1] in sets[q]:
                q -= 1
            for i in range(q, p + 1):
                head, tail = s[:i], s[i:]
                for ch in alph[i]:
                    v = head + ch + tail
                    if v in keys and v not in out:
                        out.append(v)
        # Stored key one shorter: the query has an extra character (delete one).
        sets = self.charsets.get(n - 1)
        if sets is not None and n > 1:
            p = 0  # s[:i] fits the key's positions [:i] for i <= p
            while p < n - 1 and s[p] in sets[p]:
                p += 1
            q = n - 1  # s[i + 1:] fits the key's positions [i:] for i >= q
            while q > 0 and s[q] in sets[q - 1]:
                q -= 1
            for i in range(q, p + 1):
                v = s[:i] + s[i + 1 :]
                if v in keys and v not in out:
                    out.append(v)
        return out


class _Hit(NamedTuple):
    invoices: tuple[OpenInvoice, ...]
    kind: str  # "invoice_number" | "rf_reference" | "policy_number"
    text: str  # as found in the remittance text (normalised)
    key: str  # the stored key it matched
    distance: int


_Families = tuple[tuple[_KeyFamily, str], ...]
_age_key = attrgetter("due_date", "number", "id")


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
        # Policyholders with open invoices in more than one currency.
        self.mixed_currency: set[str] = set()
        # Key length -> the families to look a candidate string of that length up in.
        self.exact_families: dict[int, _Families] = {}
        self.fuzzy_families: dict[int, _Families] = {}
        self.exact_lengths: tuple[int, ...] = ()
        self.fuzzy_lengths: tuple[int, ...] = ()
        # The first two characters a key can have (by the per-position alphabets), or None.
        self.exact_prefixes: frozenset[str] | None = None

    @classmethod
    def build(
        cls,
        invoices: Iterable[OpenInvoice],
        policyholders: Iterable[Policyholder],
        payer_links: Iterable[PayerLink] = (),
    ) -> CandidateIndex:
        with _gc_paused():  # millions of new containers: a full collection is seconds
            index = cls()
            index._add_invoices(invoices if isinstance(invoices, list) else list(invoices))
            index._add_holders(policyholders, payer_links)
        return index

    def _add_invoices(self, invs: list[OpenInvoice]) -> None:
        self.invoices = {inv.id: inv for inv in invs}
        self.currencies = {inv.currency for inv in invs}
        # Later invoices win a shared key, as with one `add` per invoice.
        self.numbers.keys = dict(zip(_compact_all([i.number for i in invs]), invs, strict=True))
        self.rfs.keys = dict(
            zip(_compact_all([i.payment_reference for i in invs]), invs, strict=True)
        )
        by_holder: defaultdict[str, list[OpenInvoice]] = defaultdict(list)
        for inv, holder in zip(invs, [i.policyholder_id for i in invs], strict=True):
            by_holder[holder].append(inv)
        by_policy: defaultdict[str, list[OpenInvoice]] = defaultdict(list)
        for inv, policy in zip(invs, _compact_all([i.policy_number for i in invs]), strict=True):
            by_policy[policy].append(inv)
        mixed = self.mixed_currency
        pools = self.by_holder
        for holder, group in by_holder.items():
            if len(group) == 1:
                pools[holder] = (group[0],)
                continue
            group.sort(key=_age_key)
            pools[holder] = tuple(group)
            currency = group[0].currency
            for inv in group:
                if inv.currency != currency:
                    mixed.add(holder)
                    break
        del by_holder
        self.policies.keys = {k: _by_age(v) for k, v in by_policy.items()}
        del by_policy
        for fam in (self.numbers, self.rfs, self.policies):
            fam.finish()

    def _add_holders(
        self, policyholders: Iterable[Policyholder], payer_links: Iterable[PayerLink]
    ) -> None:
        index = self
        named: dict[str, tuple[tuple[str, ...], tuple[str, ...], str]] = {}
        name_blocks, full_names = index.name_blocks, index.full_names
        for holder in policyholders:
            hid = holder.id
            index.holders[hid] = holder
            seen = named.get(holder.name)
            if seen is None:  # many policyholders share a name: its keys are made once
                tokens = name_tokens(holder.name)
                seen = named[holder.name] = (
                    tokens, tuple(sorted(_block_keys(tokens))), " ".join(sorted(tokens))
                )  # fmt: skip
            tokens, blocks, full = seen
            index.holder_tokens[hid] = tokens
            for key in blocks:
                block = name_blocks.get(key)
                if block is None:
                    name_blocks[key] = [hid]
                else:
                    block.append(hid)
            same = full_names.get(full)
            if same is None:
                full_names[full] = [hid]
            else:
                same.append(hid)
        for link in payer_links:
            key = link.key
            if key in index.links and index.links[key] != link.policyholder_id:
                index.links[key] = None  # one key, two policyholders: not evidence
            else:
                index.links[key] = link.policyholder_id
        families = ((index.rfs, "rf_reference"), (index.numbers, "invoice_number"),
                    (index.policies, "policy_number"))  # fmt: skip
        fams = [f for f, _ in families if f.keys]
        index.min_len = min((f.min_len for f in fams), default=0)
        index.max_len = max((f.max_len for f in fams), default=0)
        for n in range(max(index.min_len - 1, 1), index.max_len + 2):
            exact = tuple((f, k) for f, k in families if n in f.alphabets)
            fuzzy = tuple(
                (f, k) for f, k in families
                if f.keys and f.min_len - 1 <= n <= f.max_len + 1
                and any(m in f.alphabets for m in (n - 1, n, n + 1))
            )  # fmt: skip
            if exact:
                index.exact_families[n] = exact
            if fuzzy:
                index.fuzzy_families[n] = fuzzy
        index.exact_lengths = tuple(sorted(index.exact_families))
        index.fuzzy_lengths = tuple(sorted(index.fuzzy_families))
        index.exact_prefixes = _prefixes(fams)

    # -- reference search ------------------------------------------------------------------

    def _candidate_strings(self, text: str, lengths: Sequence[int] | None = None) -> list[str]:
        """Letters-and-digits runs of the text and joins of up to 8 neighbouring runs whose
        length could be a key (one edit allowed) and that hold a digit; with `lengths`
        (ascending), only the strings of those lengths. In text order: by first run, then
        by length."""
        runs = _RUNS.findall(text.upper())
        n = len(runs)
        out: list[str] = []
        if not n:
            return out
        if lengths is None:
            lengths = range(max(self.min_len - 1, 1), self.max_len + 2)
        starts, ends = _run_offsets(runs)
        # The first run at or after i that holds a digit (n when none does).
        first_digit = [n] * (n + 1)
        for j in range(n - 1, -1, -1):
            first_digit[j] = j if not runs[j].isalpha() else first_digit[j + 1]
        for i in range(n):
            d = first_digit[i]
            if d - i >= 8 or d == n:
                continue
            start = starts[i]
            for size in lengths:
                last = ends.get(start + size)
                if last is not None and d <= last and last - i < 8:
                    out.append(runs[i] if i == last else "".join(runs[i : last + 1]))
        return out

    def _exact_strings(self, text: str) -> list[str]:
        """`_candidate_strings` of the lengths of the stored keys that begin as some key of
        that length can begin (its first two characters)."""
        prefixes = self.exact_prefixes
        if prefixes is None:
            return self._candidate_strings(text, self.exact_lengths)
        runs = _RUNS.findall(text.upper())
        n = len(runs)
        out: list[str] = []
        if not n:
            return out
        joined = "".join(runs)
        starts, ends = _run_offsets(runs)
        lengths = self.exact_lengths
        for i in range(n):
            start = starts[i]
            if joined[start : start + 2] not in prefixes:
                continue
            for size in lengths:
                last = ends.get(start + size)
                if last is not None and last - i < 8:
                    s = joined[start : start + size]
                    if not s.isalpha():  # letters and digits only: holds a digit
                        out.append(s)
        return out

    def find_references(self, text: str, fuzzy: bool) -> list[_Hit]:
        hits: list[_Hit] = []
        seen: set[tuple[str, str]] = set()
        if not fuzzy:
            by_len = self.exact_families
            for s in self._exact_strings(text):
                for fam, kind in by_len[len(s)]:
                    value = fam.keys.get(s)
                    if value is not None and (kind, s) not in seen:
                        seen.add((kind, s))
                        hits.append(_Hit(_as_tuple(value), kind, s, s, 0))
            return hits
        by_len = self.fuzzy_families
        for s in self._candidate_strings(text, self.fuzzy_lengths):
            for fam, kind in by_len[len(s)]:
                for key in fam.one_edit(s):
                    if (kind, key) not in seen:
                        seen.add((kind, key))
                        hits.append(_Hit(_as_tuple(fam.keys[key]), kind, s, key, 1))
        return hits

    def link_for(self, payment: PaymentFacts) -> tuple[str, str] | None:
        """(policyholder id, evidence kind) of a learned payer link, account first."""
        tokens = name_tokens(payment.payer_name) if payment.payer_name else ()
        return self._link(payment, tokens)

    def _link(self, payment: PaymentFacts, payer_tokens: tuple[str, ...]) -> tuple[str, str] | None:
        links = self.links
        if not links:
            return None
        if payment.payer_account:
            ph = links.get(_compact(payment.payer_account))
            if ph:
                return ph, "payer_account"
        if payment.payer_name:
            ph = links.get(" ".join(sorted(payer_tokens)))
            if ph:
                return ph, "payer_name"
        return None

    def pool(self, holder: str, currency: str) -> Sequence[OpenInvoice]:
        """The policyholder's open invoices in that currency, oldest first."""
        invs = self.by_holder.get(holder, ())
        if not invs:
            return invs
        if holder in self.mixed_currency:
            return [i for i in invs if i.currency == currency]
        return invs if invs[0].currency == currency else ()

    def name_candidates(self, tokens: Sequence[str]) -> tuple[list[str], int]:
        """Policyholders whose name may be the payer's, and how many such names there are.

        A full name looks up its exact normalised form (reordering, titles and suffixes are
        normalised away); a name with initials takes the smallest block it falls in.
        """
        if all(len(t) > 1 for t in tokens):
            exact = self.full_names.get(" ".join(sorted(tokens)), [])
            if exact:
                return exact, len(exact)
        blocks = [self.name_blocks.get(k, []) for k in sorted(_block_keys(tokens))]
        smallest = min(blocks, key=len, default=[])
        return smallest, len(smallest)


def _run_offsets(runs: Sequence[str]) -> tuple[list[int], dict[int, int]]:
    """Where each run starts in the joined text, and where a join can end: the joined
    length up to the end of run j -> j."""
    starts = [0] * len(runs)
    ends: dict[int, int] = {}
    total = 0
    for j, run in enumerate(runs):
        starts[j] = total
        total += len(run)
        ends[total] = j
    return starts, ends


def _prefixes(families: Sequence[_KeyFamily]) -> frozenset[str] | None:
    """Every first two characters a key of these families can have (per-position alphabets
    allow), or None when that is no useful filter (a key shorter than 2, too many)."""
    out: set[str] = set()
    for fam in families:
        for n, alph in fam.alphabets.items():
            if n < 2 or len(alph[0]) * len(alph[1]) > 256:
                return None
            out.update(a + b for a in alph[0] for b in alph[1])
    return frozenset(out)


_NON_ALNUM_LINE = re.compile(r"[^0-9A-Z\n]+")


def _compact_all(texts: list[str]) -> list[str]:
    """[_compact(t) for t in texts] in a few passes over one joined string; the same strings
    when every one is already compact (RF references usually are)."""
    if not texts:
        return []
    joined = "\n".join(texts)
    if joined.count("\n") != len(texts) - 1:  # a text with a line break: one by one
        return [_compact(t) for t in texts]
    upper = joined.upper()
    compact = upper.replace("-", "").replace(" ", "")  # the usual separators, fast
    if not (compact.isascii() and compact.replace("\n", "").isalnum()):
        compact = _NON_ALNUM_LINE.sub("", upper)
    if compact == joined:
        return texts
    return compact.split("\n")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off for a bulk build (it frees nothing there), then back
    as it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _by_age(invoices: list[OpenInvoice]) -> tuple[OpenInvoice, ...]:
    if len(invoices) == 1:
        return (invoices[0],)
    invoices.sort(key=_age_key)
    return tuple(invoices)


def _as_tuple(value: object) -> tuple[OpenInvoice, ...]:
    if isinstance(value, OpenInvoice):
        return (value,)
    assert isinstance(value, tuple)
    return value


# --------------------------------------------------------------------------- allocation plans


class _Plan(NamedTuple):
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
    rest: Sequence[OpenInvoice]
    if required:
        req_sum = sum(i.amount_due for i in required)
        if req_sum == amount:
            chosen: Sequence[OpenInvoice] = sorted(required, key=_age_key)
            return _full(holder, chosen, "exact" if len(chosen) == 1 else "several")
        req_ids = {i.id for i in required}
        rest = [i for i in pool if i.id not in req_ids]
        target = amount - req_sum
        if target <= 0:
            return None
    else:
        rest = pool
        target = amount
        if target <= 0:
            return None
        for inv in rest:  # one invoice, the oldest with that amount
            if inv.amount_due == target:
                return _full(holder, (inv,), "exact")
    total = 0
    for k, inv in enumerate(rest):  # the oldest k invoices
        total += inv.amount_due
        if total == target:
            return _full(holder, sorted([*required, *rest[: k + 1]], key=_age_key), "several")
        if total > target:
            break
    m = len(rest)
    if m < 2 or m > 12:
        return None
    # Any two or three of a few invoices, oldest combination first (the order in which
    # itertools.combinations would list them).
    amounts = [i.amount_due for i in rest]
    present = set(amounts)
    for a in range(m - 1):
        need = target - amounts[a]
        if need in present:
            for b in range(a + 1, m):
                if amounts[b] == need:
                    return _full(holder, sorted([*required, rest[a], rest[b]], key=_age_key),
                                 "several")  # fmt: skip
    for a in range(m - 2):
        for b in range(a + 1, m - 1):
            need = target - amounts[a] - amounts[b]
            if need in present:
                for c in range(b + 1, m):
                    if amounts[c] == need:
                        chosen = sorted([*required, rest[a], rest[b], rest[c]], key=_age_key)
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
    return _similarity(payer_tokens, tokens)


def _is_duplicate(
    payment: PaymentFacts,
    recent: Iterable[PaymentFacts],
    settings: MatchSettings,
    payer_tokens: tuple[str, ...] | None = None,
) -> PaymentFacts | None:
    keys: tuple[str, str, str] | None = None
    pid, amount, currency = payment.id, payment.amount, payment.currency
    day, window = payment.received_on, settings.duplicate_window_days
    for other in recent:
        if other.id == pid or other.is_return:
            continue
        if other.amount != amount or other.currency != currency:
            continue
        if abs((day - other.received_on).days) > window:
            continue
        if keys is None:  # normalise only when a payment of this amount is that recent
            keys = (
                _compact_reference(payment.reference),
                _compact(payment.payer_account or ""),
                " ".join(sorted(payer_tokens))
                if payer_tokens is not None
                else normalize_name(payment.payer_name or ""),
            )
        ref, account, name = keys
        if other.reference != payment.reference and _compact_reference(other.reference) != ref:
            continue
        same_account = bool(account) and (
            other.payer_account == payment.payer_account
            or _compact(other.payer_account or "") == account
        )
        same_name = bool(name) and (
            other.payer_name == payment.payer_name
            or _normalized_name(other.payer_name or "") == name
        )
        same_stripe = bool(payment.stripe_invoice_id) and (
            other.stripe_invoice_id == payment.stripe_invoice_id
        )
        if same_account or same_name or same_stripe:
            return other
    return None


def _ranked(options: Iterable[_Option], limit: int) -> tuple[Candidate, ...]:
    """The best (rounded) score of each invoice, highest first, then by invoice id."""
    best: dict[str, tuple[float, str]] = {}
    for opt in options:
        for inv_id in opt.invoice_ids:
            cur = best.get(inv_id)
            if cur is None or opt.score > cur[0]:
                best[inv_id] = (round(opt.score, 4), opt.rule)
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    return tuple(_candidate(inv_id, score, rule) for inv_id, (score, rule) in ranked[:limit])


def _decide(
    payment: PaymentFacts,
    options: list[_Option],
    settings: MatchSettings,
    everything: list[_Option],
) -> MatchDecision | None:
    """The single best auto-postable option, or None when there is none or it is ambiguous."""
    threshold = settings.auto_threshold
    postable = [o for o in options if o.plan is not None and o.score >= threshold]
    if not postable:
        return None
    if len(postable) > 1:
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
    return _decision(
        payment.id, plan.outcome, plan.holder, plan.allocations, plan.credit, plan.write_offs,
        best.rule, round(best.score, 4), dict(best.evidence, allocation=plan.how),
        _ranked(everything, settings.max_candidates),
    )  # fmt: skip


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
    currency = payment.currency
    for hit in hits:
        for inv in hit.invoices:
            if inv.currency != currency:
                continue  # never across currencies
            direct, pool, found = groups.setdefault(inv.policyholder_id, ([], [], []))
            target = direct if hit.kind != "policy_number" else pool
            if all(i.id != inv.id for i in target):
                target.append(inv)
            if hit not in found:
                found.append(hit)
    options: list[_Option] = []
    amount = payment.amount
    threshold = settings.auto_threshold
    for holder, (direct, pool, found) in groups.items():
        fuzzy = any(h.distance for h in found)
        kinds = {h.kind for h in found}
        checked = "rf_reference" in kinds  # check digits: a typo cannot land on another RF
        rule = ("fuzzy_" if fuzzy else "") + ("policy_number" if not direct else "reference")
        ids = tuple(i.id for i in (direct or pool))
        if (
            fuzzy and payer_tokens and not checked
            and (link is None or link[0] != holder)
            and not _may_agree(payer_tokens, index.holder_tokens.get(holder), threshold)
        ):  # fmt: skip
            # A corrected number whose payer cannot agree: 0.45, as below, without the
            # name score. A corrected number is often one edit from dozens of others.
            options.append(_Option(0.45, None, rule, {}, ids))
            continue
        payer = _payer_score(payment, holder, index, payer_tokens, link)
        payer_agrees = payer >= threshold
        # A payer name that is given and clearly someone else's contradicts the reference.
        contradicts = (bool(payer_tokens) and payer < 0.6) or (
            link is not None and link[0] != holder
        )
        has_payer = bool(payer_tokens) or link is not None
        if fuzzy and not payer_agrees and (contradicts or (has_payer and not checked)):
            # A corrected reference the payer does not back scores 0.45 whatever the amount
            # says (see below): it only ranks the suspense candidates, so no plan is made.
            # A corrected number is often one edit from dozens of others: this is the bulk.
            options.append(_Option(0.45, None, rule, {}, ids))
            continue
        holder_invoices = index.pool(holder, currency)
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
        if fuzzy:
            base = 0.95 if checked else 0.93
        else:
            base = 0.99 if (checked or "invoice_number" in kinds) else 0.97
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
            "amount_agrees": "true" if amount_agrees else "false",
            "payer_agrees": "true" if payer_agrees else "false",
            "payer_score": f"{payer:.2f}",
        }
        if len(found) > 1:
            evidence["references"] = " ".join(sorted({h.key for h in found}))
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
    """The common case in a few steps: one exact invoice number or RF reference (or both of
    one invoice), same currency, exact amount, payer agrees. Same decision as the general
    path gives."""
    hit = hits[0]
    if hit.kind == "policy_number" or len(hit.invoices) != 1:
        return None
    for other in hits[1:]:
        if other.kind == "policy_number" or other.invoices != hit.invoices:
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
    }
    if len(hits) > 1:
        evidence["references"] = " ".join(sorted({h.key for h in hits}))
    evidence["allocation"] = "exact"
    return _decision(
        payment.id, "matched", holder, ((inv.id, inv.amount_due),), 0, (), "reference", 0.99,
        evidence, (_candidate(inv.id, 0.99, "reference"),),
    )  # fmt: skip


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
    settings = settings or _DEFAULT_SETTINGS
    if payment.is_return:
        return MatchDecision(
            payment.id, "return", rule="return", score=1.0,
            evidence={"reason": "return or reversal: never matched as new money"},
        )  # fmt: skip
    payer_tokens = name_tokens(payment.payer_name) if payment.payer_name else ()
    original = _is_duplicate(payment, recent_payments, settings, payer_tokens)
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

    threshold = settings.auto_threshold
    everything: list[_Option] = []
    # Invoices the remittance text points at (any currency). A payer-only match that
    # disagrees with them is contradicted by the text and does not auto-post.
    referenced: set[str] = set()
    link = index._link(payment, payer_tokens)

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
        if exact:
            fast = _fast_exact(payment, exact, index, settings, payer_tokens, link)
            if fast is not None:
                return fast
            referenced.update(i.id for h in exact for i in h.invoices)
            options = _reference_options(payment, exact, index, settings, payer_tokens, link)
            everything.extend(options)
            decision = _decide(payment, options, settings, everything)
            if decision is not None:
                return decision
        else:
            options = []
        if not any(o.plan is not None and o.score >= threshold for o in options):
            fuzzy = index.find_references(payment.reference, fuzzy=True)
            exact_keys = {h.key for h in exact}
            fuzzy = [h for h in fuzzy if h.key not in exact_keys]
            options = []
            tokens_of = index.holder_tokens
            for hit in fuzzy:
                invs = hit.invoices
                if len(invs) == 1 and hit.kind != "rf_reference" and payer_tokens:
                    # The bulk: one of the dozens of numbers one edit away, someone else's.
                    # What `_reference_options` gives it when its payer cannot agree.
                    inv = invs[0]
                    if inv.currency != payment.currency:
                        continue  # never across currencies: no option
                    holder = inv.policyholder_id
                    if (link is None or link[0] != holder) and not _may_agree(
                        payer_tokens, tokens_of.get(holder), threshold
                    ):
                        rule = "fuzzy_" + (
                            "policy_number" if hit.kind == "policy_number" else "reference"
                        )
                        options.append(_Option(0.45, None, rule, {}, (inv.id,)))
                        continue
                options += _reference_options(payment, [hit], index, settings, payer_tokens, link)
            if exact:
                # The text holds a valid reference that did not corroborate: a corrected one
                # overrides it only when both the payer and the amount agree.
                options = [
                    o
                    for o in options
                    if o.evidence.get("amount_agrees") == "true"
                    and o.evidence.get("payer_agrees") == "true"
                ] + [o for o in options if o.score < threshold]
            everything.extend(options)
            referenced.update(i for o in options if o.score >= threshold for i in o.invoice_ids)
            decision = _decide(payment, _corroborated_single(options, settings), settings,
                               everything)  # fmt: skip
            if decision is not None:
                return decision

    # 3. A learned payer link, exact amount only.
    if link is not None:
        holder, kind = link
        pool = index.pool(holder, payment.currency)
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
                pool = index.pool(holder, payment.currency)
                if not pool:
                    continue
                s = _similarity(payer_tokens, index.holder_tokens[holder])
                if s < 0.8:
                    continue
                plan = _exact_plan(payment.amount, holder, pool)
                score = min(0.97, s) if plan is not None else 0.5 * s
                contradicted = plan is not None and _contradicted(plan, referenced)
                if contradicted:
                    score = min(score, 0.6)
                # Evidence is read only from the option that posts: none below the threshold.
                found: dict[str, str] = {}
                if score >= threshold:
                    found = {
                        "payer_name": payment.payer_name or "",
                        "policyholder_name": index.holders[holder].name,
                        "name_score": f"{s:.2f}",
                        "similar_names": str(close),
                    }
                    if contradicted:
                        found["contradicted_by"] = "reference in remittance text"
                ids = tuple(a for a, _ in plan.allocations) if plan else tuple(i.id for i in pool)
                options.append(_Option(score, plan, "payer_name", found, ids))
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
