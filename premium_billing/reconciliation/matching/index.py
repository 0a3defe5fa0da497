"""The candidate index: lookups over one snapshot of open invoices, policyholders and learned
payer links, built once per run.

Everything that depends only on the invoices is computed once in `CandidateIndex.build`
(compact keys, per-position alphabets of each key length, age-ordered pools per
policyholder, name tokens per distinct name); a payment's text is cut into candidate strings
only of lengths a key can have; the one-edit lookup first rejects strings with two
characters no key uses.
"""

from __future__ import annotations

import bisect
import gc
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import NamedTuple

from premium_billing.reconciliation.matching.normalise import (
    block_keys,
    compact,
    compact_all,
    name_tokens,
)
from premium_billing.reconciliation.matching.scores import MAX_JOINED_RUNS
from premium_billing.reconciliation.matching.types import (
    AGE_KEY,
    OpenInvoice,
    PayerLink,
    PaymentFacts,
    Policyholder,
)

_RUNS = re.compile(r"[0-9A-Z]+")
_PREFIX_PAIRS = 256  # more possible first two characters than this: no useful filter
_NO_KEY = 10**9  # the shortest key length of a family without keys


class KeyFamily:
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
        self.min_len = _NO_KEY
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
        self.min_len = min(by_len, default=_NO_KEY)
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


def edit_kind(typed: str, meant: str) -> str:
    """What one edit turned `meant` into `typed` (two keys at edit distance 1, as
    `KeyFamily.one_edit` finds them): "substitution", "transposition" (two adjacent
    characters swapped), "insertion" (a character too many) or "deletion" (one missing)."""
    if len(typed) > len(meant):
        return "insertion"
    if len(typed) < len(meant):
        return "deletion"
    diff = [i for i, (a, b) in enumerate(zip(typed, meant, strict=True)) if a != b]
    return "transposition" if len(diff) == 2 else "substitution"


class Hit(NamedTuple):
    invoices: tuple[OpenInvoice, ...]
    kind: str  # "invoice_number" | "rf_reference" | "policy_number"
    text: str  # as found in the remittance text (normalised)
    key: str  # the stored key it matched
    distance: int


Families = tuple[tuple[KeyFamily, str], ...]


class CandidateIndex:
    """Lookups over one snapshot of open invoices, policyholders and learned payer links."""

    def __init__(self) -> None:
        self.invoices: dict[str, OpenInvoice] = {}
        self.holders: dict[str, Policyholder] = {}
        self.holder_tokens: dict[str, tuple[str, ...]] = {}
        self.by_holder: dict[str, tuple[OpenInvoice, ...]] = {}
        self.numbers = KeyFamily()
        self.rfs = KeyFamily()
        self.policies = KeyFamily()
        self.name_blocks: dict[str, list[str]] = {}
        self.full_names: dict[str, list[str]] = {}
        self.links: dict[str, str | None] = {}
        self.currencies: set[str] = set()
        # Open invoices per currency, and per (currency, amount due): how common an amount is.
        self.currency_counts: dict[str, int] = {}
        self.amount_counts: dict[tuple[str, int], int] = {}
        self.min_len = 0
        self.max_len = 0
        # Policyholders with open invoices in more than one currency.
        self.mixed_currency: set[str] = set()
        # Key length -> the families to look a candidate string of that length up in.
        self.exact_families: dict[int, Families] = {}
        self.fuzzy_families: dict[int, Families] = {}
        self.exact_lengths: tuple[int, ...] = ()
        self.fuzzy_lengths: tuple[int, ...] = ()
        # The first two characters a key can have (by the per-position alphabets), or None.
        self.exact_prefixes: frozenset[str] | None = None
        # (currency, amount due) -> open invoices, oldest first; currency -> the amounts due
        # in it, ascending: made on first use.
        self._by_amount: dict[tuple[str, int], list[OpenInvoice]] | None = None
        self._amounts: dict[str, list[int]] = {}
        # (currency, amount due) -> {policyholder: where its first such invoice stands}.
        self._amount_holders: dict[tuple[str, int], dict[str, int]] = {}

    @classmethod
    def build(
        cls,
        invoices: Iterable[OpenInvoice],
        policyholders: Iterable[Policyholder],
        payer_links: Iterable[PayerLink] = (),
    ) -> CandidateIndex:
        with gc_paused():  # millions of new containers: a full collection is seconds
            index = cls()
            index._add_invoices(invoices if isinstance(invoices, list) else list(invoices))
            index._add_holders(policyholders, payer_links)
        return index

    def _add_invoices(self, invs: list[OpenInvoice]) -> None:
        self.invoices = {inv.id: inv for inv in invs}
        currencies = [i.currency for i in invs]
        self.currencies = set(currencies)
        self.currency_counts = Counter(currencies)
        self.amount_counts = Counter(zip(currencies, [i.amount_due for i in invs], strict=True))
        # Later invoices win a shared key, as with one `add` per invoice.
        self.numbers.keys = dict(zip(compact_all([i.number for i in invs]), invs, strict=True))
        self.rfs.keys = dict(
            zip(compact_all([i.payment_reference for i in invs]), invs, strict=True)
        )
        by_holder: defaultdict[str, list[OpenInvoice]] = defaultdict(list)
        for inv, holder in zip(invs, [i.policyholder_id for i in invs], strict=True):
            by_holder[holder].append(inv)
        by_policy: defaultdict[str, list[OpenInvoice]] = defaultdict(list)
        for inv, policy in zip(invs, compact_all([i.policy_number for i in invs]), strict=True):
            by_policy[policy].append(inv)
        mixed = self.mixed_currency
        pools = self.by_holder
        for holder, group in by_holder.items():
            if len(group) == 1:
                pools[holder] = (group[0],)
                continue
            group.sort(key=AGE_KEY)
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
                    tokens, tuple(sorted(block_keys(tokens))), " ".join(sorted(tokens))
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
        """Letters-and-digits runs of the text and joins of up to MAX_JOINED_RUNS (8)
        neighbouring runs whose length could be a key (one edit allowed) and that hold a
        digit; with `lengths` (ascending), only the strings of those lengths. In text order:
        by first run, then by length."""
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
            if d - i >= MAX_JOINED_RUNS or d == n:
                continue
            start = starts[i]
            for size in lengths:
                last = ends.get(start + size)
                if last is not None and d <= last and last - i < MAX_JOINED_RUNS:
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
                if last is not None and last - i < MAX_JOINED_RUNS:
                    s = joined[start : start + size]
                    if not s.isalpha():  # letters and digits only: holds a digit
                        out.append(s)
        return out

    def find_references(self, text: str, fuzzy: bool) -> list[Hit]:
        hits: list[Hit] = []
        seen: set[tuple[str, str]] = set()
        if not fuzzy:
            by_len = self.exact_families
            for s in self._exact_strings(text):
                for fam, kind in by_len[len(s)]:
                    value = fam.keys.get(s)
                    if value is not None and (kind, s) not in seen:
                        seen.add((kind, s))
                        hits.append(Hit(_as_tuple(value), kind, s, s, 0))
            return hits
        by_len = self.fuzzy_families
        for s in self._candidate_strings(text, self.fuzzy_lengths):
            for fam, kind in by_len[len(s)]:
                for key in fam.one_edit(s):
                    if (kind, key) not in seen:
                        seen.add((kind, key))
                        hits.append(Hit(_as_tuple(fam.keys[key]), kind, s, key, 1))
        return hits

    def number_neighbours(self, key: str) -> list[tuple[str, OpenInvoice]]:
        """(number, invoice) of the open invoices whose invoice number (compact) is one edit
        from `key`, itself left out: tens of exact lookups (`KeyFamily.one_edit`), no scan."""
        keys = self.numbers.keys
        out: list[tuple[str, OpenInvoice]] = []
        for k in self.numbers.one_edit(key):
            value = keys[k]
            if isinstance(value, OpenInvoice):
                out.append((k, value))
        return out

    def amount_share(self, currency: str, amount: int) -> float:
        """How common an amount is besides one invoice due it: the share of the other open
        invoices in `currency` that are due exactly `amount` (0 when none is)."""
        others = self.amount_counts.get((currency, amount), 0) - 1
        return others / (self.currency_counts[currency] - 1) if others > 0 else 0.0

    def amount_invoices(self, currency: str, amount: int) -> Sequence[OpenInvoice]:
        """The open invoices in `currency` due exactly `amount`, oldest first. The lookup is
        made on first use (only the suspense candidates need it), once per index."""
        return self._amount_lookup().get((currency, amount), ())

    def amount_holders(self, currency: str, amount: int) -> dict[str, int]:
        """The policyholders with an open invoice in `currency` due exactly `amount`, each
        with the place of its first one in `amount_invoices` (made once per amount: a common
        premium is due on tens of thousands of invoices, asked about by many payments)."""
        key = (currency, amount)
        found = self._amount_holders.get(key)
        if found is None:
            found = {}
            for place, inv in enumerate(self.amount_invoices(currency, amount)):
                found.setdefault(inv.policyholder_id, place)
            self._amount_holders[key] = found
        return found

    def nearest_amounts(self, currency: str, amount: int, k: int) -> list[OpenInvoice]:
        """Up to `k` open invoices in `currency` due the amounts closest to `amount` (the
        nearer first; of two as near, the smaller; oldest first within an amount)."""
        by_amount = self._amount_lookup()
        amounts = self._amounts.get(currency, [])
        out: list[OpenInvoice] = []
        hi = bisect.bisect_left(amounts, amount)
        lo = hi - 1
        while len(out) < k and (lo >= 0 or hi < len(amounts)):
            if hi >= len(amounts) or (lo >= 0 and amount - amounts[lo] <= amounts[hi] - amount):
                due, lo = amounts[lo], lo - 1
            else:
                due, hi = amounts[hi], hi + 1
            out.extend(by_amount[(currency, due)][: k - len(out)])
        return out

    def _amount_lookup(self) -> dict[tuple[str, int], list[OpenInvoice]]:
        by_amount = self._by_amount
        if by_amount is None:
            by_amount = {}
            for inv in self.invoices.values():
                key = (inv.currency, inv.amount_due)
                found = by_amount.get(key)
                if found is None:
                    by_amount[key] = [inv]
                else:
                    found.append(inv)
            amounts: dict[str, list[int]] = {}
            for (currency, due), group in by_amount.items():
                amounts.setdefault(currency, []).append(due)
                if len(group) > 1:
                    group.sort(key=AGE_KEY)
            for values in amounts.values():
                values.sort()
            self._by_amount, self._amounts = by_amount, amounts
        return by_amount

    def typed_rf_hits(self, text: str, key: str) -> list[Hit] | None:
        """When `key` (a number found in `text`) stands inside an RF reference as typed ("RF",
        two digits, then the key): the RF references one edit from such an RF-shaped string
        of the text (`find_references`, fuzzy). None when the key is not typed as an RF."""
        compacted = compact(text)
        at = compacted.find(key)
        while at >= 0:
            head = compacted[at - 4 : at] if at >= 4 else ""
            if head[:2] == "RF" and head[2:].isdigit():
                break
            at = compacted.find(key, at + 1)
        if at < 0:
            return None
        return [
            h for h in self.find_references(text, fuzzy=True)
            if h.kind == "rf_reference" and h.text.startswith("RF") and key in h.text
        ]  # fmt: skip

    def link_for(self, payment: PaymentFacts) -> tuple[str, str] | None:
        """(policyholder id, evidence kind) of a learned payer link, account first."""
        tokens = name_tokens(payment.payer_name) if payment.payer_name else ()
        return self.link_of(payment, tokens)

    def link_of(
        self, payment: PaymentFacts, payer_tokens: tuple[str, ...]
    ) -> tuple[str, str] | None:
        """`link_for` with the payer's name tokens already made."""
        links = self.links
        if not links:
            return None
        if payment.payer_account:
            ph = links.get(compact(payment.payer_account))
            if ph:
                return ph, "payer_account"
        if payment.payer_name:
            ph = links.get(" ".join(sorted(payer_tokens)))
            if ph:
                return ph, "payer_name"
        return None

    def by_stripe_id(self, stripe_invoice_id: str) -> OpenInvoice | None:
        """The invoice a Stripe invoice's metadata names: our invoice id, or its number."""
        inv = self.invoices.get(stripe_invoice_id)
        if inv is not None:
            return inv
        value = self.numbers.keys.get(compact(stripe_invoice_id))
        return value if isinstance(value, OpenInvoice) else None

    def policy_invoices(self, invoice: OpenInvoice) -> tuple[OpenInvoice, ...]:
        """The open invoices of the invoice's policy, oldest first (the invoice among them)."""
        value = self.policies.keys.get(compact(invoice.policy_number))
        return (invoice,) if value is None else _as_tuple(value)

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
        blocks = [self.name_blocks.get(k, []) for k in sorted(block_keys(tokens))]
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


def _prefixes(families: Sequence[KeyFamily]) -> frozenset[str] | None:
    """Every first two characters a key of these families can have (per-position alphabets
    allow), or None when that is no useful filter (a key shorter than 2, too many)."""
    out: set[str] = set()
    for fam in families:
        for n, alph in fam.alphabets.items():
            if n < 2 or len(alph[0]) * len(alph[1]) > _PREFIX_PAIRS:
                return None
            out.update(a + b for a in alph[0] for b in alph[1])
    return frozenset(out)


_NON_ALNUM_LINE = re.compile(r"[^0-9A-Z\n]+")


@contextmanager
def gc_paused() -> Iterator[None]:
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
    invoices.sort(key=AGE_KEY)
    return tuple(invoices)


def _as_tuple(value: object) -> tuple[OpenInvoice, ...]:
    if isinstance(value, OpenInvoice):
        return (value,)
    assert isinstance(value, tuple)
    return value
