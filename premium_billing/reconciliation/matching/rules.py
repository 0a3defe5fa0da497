"""The matching rules. Each turns what one rule sees in a payment into scored options (a
candidate with the plan it would post); `decide.match_payment` applies them in order of
confidence and decides. The scores are named in `scores`.

  duplicate guard: the same payment again within a few days;
  1. Stripe metadata (`stripe_option`);
  2. references in the remittance text: exact (`fast_exact`, `reference_options`); a quoted
     invoice number whose amount disagrees checked against its one-edit neighbours
     (`quoted_neighbour_options`); then one edit away (`fuzzy_reference_options`,
     `corroborated_single`);
  3. a learned payer link with an exact amount (`linked_payer_option`);
  4./5. a fuzzy payer name with an exact amount, one invoice or several
     (`payer_name_options`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from premium_billing.reconciliation.matching.index import CandidateIndex, Hit, edit_kind
from premium_billing.reconciliation.matching.normalise import (
    compact,
    compact_reference,
    normalize_name,
    normalized_name,
)
from premium_billing.reconciliation.matching.plans import (
    Plan,
    covering_prefix,
    exact_plan,
    full_plan,
    spread_plan,
)
from premium_billing.reconciliation.matching.scores import (
    CERTAIN,
    CONTRADICTED_CAP,
    EXACT_INVOICE_REFERENCE,
    EXACT_POLICY_NUMBER,
    FUZZY_NUMBER,
    FUZZY_RF_REFERENCE,
    LINKED_ACCOUNT,
    LINKED_NAME,
    MAX_CHANCE_FITS,
    NAME_CANDIDATE_MIN,
    NAME_MATCH_MAX,
    NAME_NO_PLAN_FACTOR,
    NO_EVIDENCE,
    NO_PLAN_CAP,
    ONE_SIDED_PENALTY,
    PAYER_CONTRADICTS_BELOW,
    QUOTED_NEIGHBOUR,
    THIRD_PARTY_PENALTY,
    UNCORROBORATED_EXACT,
    UNCORROBORATED_FUZZY,
)
from premium_billing.reconciliation.matching.similarity import may_agree, similarity
from premium_billing.reconciliation.matching.types import (
    MatchDecision,
    MatchSettings,
    OpenInvoice,
    PaymentFacts,
    new_candidate,
    new_decision,
)

FAST_EXACT_REASON = "its number or RF reference is in the text; the amount agrees; the payer agrees"


@dataclass(slots=True)
class Option:
    """A candidate of one rule: its score, the plan it would post (None: it only ranks the
    suspense candidates), the evidence and the invoices it names."""

    score: float
    plan: Plan | None
    rule: str
    evidence: dict[str, str]
    invoice_ids: tuple[str, ...]


def payer_score(
    payment: PaymentFacts,
    holder: str,
    index: CandidateIndex,
    payer_tokens: tuple[str, ...],
    link: tuple[str, str] | None,
) -> float:
    """How surely the payer is the policyholder: a learned link is certain, else the name
    similarity."""
    if link is not None and link[0] == holder:
        return CERTAIN
    tokens = index.holder_tokens.get(holder)
    if not tokens or not payer_tokens:
        return NO_EVIDENCE
    return similarity(payer_tokens, tokens)


def is_duplicate(
    payment: PaymentFacts,
    recent: Iterable[PaymentFacts],
    settings: MatchSettings,
    payer_tokens: tuple[str, ...] | None = None,
) -> PaymentFacts | None:
    """The duplicate guard: an earlier payment of `recent` that this one repeats (same
    amount and currency within the window, same reference, and the same account, payer
    name or Stripe invoice), or None."""
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
                compact_reference(payment.reference),
                compact(payment.payer_account or ""),
                " ".join(sorted(payer_tokens))
                if payer_tokens is not None
                else normalize_name(payment.payer_name or ""),
            )
        ref, account, name = keys
        if other.reference != payment.reference and compact_reference(other.reference) != ref:
            continue
        same_account = bool(account) and (
            other.payer_account == payment.payer_account
            or compact(other.payer_account or "") == account
        )
        same_name = bool(name) and (
            other.payer_name == payment.payer_name
            or normalized_name(other.payer_name or "") == name
        )
        same_stripe = bool(payment.stripe_invoice_id) and (
            other.stripe_invoice_id == payment.stripe_invoice_id
        )
        if same_account or same_name or same_stripe:
            return other
    return None


def stripe_option(
    payment: PaymentFacts, index: CandidateIndex, settings: MatchSettings
) -> Option | None:
    """Rule 1: the invoice Stripe's metadata names, same currency (None: no such invoice)."""
    assert payment.stripe_invoice_id
    inv = index.by_stripe_id(payment.stripe_invoice_id)
    if inv is None or inv.currency != payment.currency:
        return None
    holder = inv.policyholder_id
    plan = exact_plan(payment.amount, holder, (), [inv])
    plan = plan or spread_plan(payment.amount, holder, [inv], settings)
    evidence = {"stripe_invoice_id": payment.stripe_invoice_id, "found_in": "metadata"}
    return Option(CERTAIN, plan, "stripe_metadata", evidence, (inv.id,))


def reference_options(
    payment: PaymentFacts,
    hits: list[Hit],
    index: CandidateIndex,
    settings: MatchSettings,
    payer_tokens: tuple[str, ...],
    link: tuple[str, str] | None,
) -> list[Option]:
    """One option per policyholder named by the references found in the text."""
    groups: dict[str, tuple[list[OpenInvoice], list[OpenInvoice], list[Hit]]] = {}
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
    options: list[Option] = []
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
            and not may_agree(payer_tokens, index.holder_tokens.get(holder), threshold)
        ):  # fmt: skip
            # A corrected number whose payer cannot agree: UNCORROBORATED_FUZZY, as below,
            # without the name score. A corrected number is often one edit from dozens of
            # others.
            options.append(Option(UNCORROBORATED_FUZZY, None, rule, {}, ids))
            continue
        payer = payer_score(payment, holder, index, payer_tokens, link)
        payer_agrees = payer >= threshold
        # A payer name that is given and clearly someone else's contradicts the reference.
        contradicts = (bool(payer_tokens) and payer < PAYER_CONTRADICTS_BELOW) or (
            link is not None and link[0] != holder
        )
        has_payer = bool(payer_tokens) or link is not None
        if fuzzy and not payer_agrees and (contradicts or (has_payer and not checked)):
            # A corrected reference the payer does not back scores UNCORROBORATED_FUZZY
            # whatever the amount says (see below): it only ranks the suspense candidates, so
            # no plan is made. A corrected number is often one edit from dozens of others:
            # this is the bulk.
            options.append(Option(UNCORROBORATED_FUZZY, None, rule, {}, ids))
            continue
        holder_invoices = index.pool(holder, currency)
        plan: Plan | None = None
        if direct:
            plan = exact_plan(amount, holder, holder_invoices, direct)
        else:
            plan = exact_plan(amount, holder, pool)
            if plan is None:
                plan = exact_plan(amount, holder, holder_invoices, ())
                if plan is not None and not {a for a, _ in plan.allocations} & {i.id for i in pool}:
                    plan = None
        amount_agrees = plan is not None
        if plan is None:
            targets = direct if direct else covering_prefix(pool, amount)
            spread = spread_plan(amount, holder, targets, settings)
            if spread.how == "tolerance" and not fuzzy:
                plan, amount_agrees = spread, True
            elif payer_agrees:
                plan = spread
        if fuzzy:
            base = FUZZY_RF_REFERENCE if checked else FUZZY_NUMBER
        else:
            base = (
                EXACT_INVOICE_REFERENCE
                if (checked or "invoice_number" in kinds)
                else EXACT_POLICY_NUMBER
            )
        if amount_agrees and payer_agrees:
            score = base
        elif payer_agrees:
            score = base - ONE_SIDED_PENALTY
        elif amount_agrees and not contradicts and not (fuzzy and has_payer and not checked):
            # A corrected plain number is corroborated by the amount alone only when no payer
            # is known at all: premiums repeat, a neighbouring number often has the same one.
            score = base - ONE_SIDED_PENALTY
        elif amount_agrees and checked and not fuzzy:
            # The check digits vouch for the reference: a third party paid.
            score = base - THIRD_PARTY_PENALTY
        else:
            score = UNCORROBORATED_FUZZY if fuzzy else UNCORROBORATED_EXACT
        if plan is None:
            score = min(score, NO_PLAN_CAP)
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
        options.append(Option(score, plan, rule, evidence, ids))
    return options


def fast_exact(
    payment: PaymentFacts,
    hits: list[Hit],
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
    payer = payer_score(payment, holder, index, payer_tokens, link)
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
    return new_decision(
        payment.id, "matched", holder, ((inv.id, inv.amount_due),), 0, (), "reference",
        EXACT_INVOICE_REFERENCE, evidence,
        (new_candidate(inv.id, EXACT_INVOICE_REFERENCE, "reference", FAST_EXACT_REASON),),
    )  # fmt: skip


def corroborated_single(options: list[Option], settings: MatchSettings) -> list[Option]:
    """A fuzzy reference posts only when exactly one candidate is corroborated.

    A candidate whose amount agrees outranks those that only share the payer; the same
    invoice found through two keys (RF and number) is one candidate.
    """
    good = [o for o in options if o.plan is not None and o.score >= settings.auto_threshold]
    agreeing = [o for o in good if o.evidence.get("amount_agrees") == "true"]
    good = agreeing or good
    by_holder: dict[str, list[Option]] = {}
    for o in good:
        assert o.plan is not None
        by_holder.setdefault(o.plan.holder, []).append(o)
    kept: list[Option] = []
    for opts in by_holder.values():
        agreeing = [o for o in opts if o.evidence.get("amount_agrees") == "true"]
        kept.extend(agreeing or opts)
    plans = {o.plan for o in kept}
    if len(plans) != 1:
        return []
    return [max(kept, key=lambda o: o.score)]


def fuzzy_reference_options(
    payment: PaymentFacts,
    exact: list[Hit],
    index: CandidateIndex,
    settings: MatchSettings,
    payer_tokens: tuple[str, ...],
    link: tuple[str, str] | None,
    found: list[Hit] | None = None,
) -> list[Option]:
    """Rule 2, one edit away: options for the references one typo or adjacent transposition
    from what the text holds (keys found exactly, `exact`, left out; `found`: the text's
    references one edit away, None: looked up here). Decide on them through
    `corroborated_single`."""
    threshold = settings.auto_threshold
    if found is None:
        found = index.find_references(payment.reference, fuzzy=True)
    fuzzy = found
    exact_keys = {h.key for h in exact}
    fuzzy = [h for h in fuzzy if h.key not in exact_keys]
    options: list[Option] = []
    tokens_of = index.holder_tokens
    for hit in fuzzy:
        invs = hit.invoices
        if len(invs) == 1 and hit.kind != "rf_reference" and payer_tokens:
            # The bulk: one of the dozens of numbers one edit away, someone else's.
            # What `reference_options` gives it when its payer cannot agree.
            inv = invs[0]
            if inv.currency != payment.currency:
                continue  # never across currencies: no option
            holder = inv.policyholder_id
            if (link is None or link[0] != holder) and not may_agree(
                payer_tokens, tokens_of.get(holder), threshold
            ):
                rule = "fuzzy_" + ("policy_number" if hit.kind == "policy_number" else "reference")
                options.append(Option(UNCORROBORATED_FUZZY, None, rule, {}, (inv.id,)))
                continue
        options += reference_options(payment, [hit], index, settings, payer_tokens, link)
    if exact:
        # The text holds a valid reference that did not corroborate: a corrected one
        # overrides it only when both the payer and the amount agree.
        options = [
            o
            for o in options
            if o.evidence.get("amount_agrees") == "true"
            and o.evidence.get("payer_agrees") == "true"
        ] + [o for o in options if o.score < threshold]
    return options


def quoted_neighbour_options(
    payment: PaymentFacts,
    exact: list[Hit],
    index: CandidateIndex,
    settings: MatchSettings,
    payer_tokens: tuple[str, ...],
    link: tuple[str, str] | None,
) -> list[Option]:
    """Rule 2, a typo that names another real invoice: the text quotes one invoice number
    (`exact`: nothing else found), its invoice is open in the payment's currency for another
    amount, and the payer does not back it. Then one option per invoice whose number is one
    edit from the quoted one (a substituted, missing or extra character, two adjacent ones
    transposed; `KeyFamily.one_edit`), open in the payment's currency for exactly the
    amount, and whose policyholder the payer is, when a payer is known at all (premiums
    repeat: a known payer who is someone else does not let the amount alone decide).

    When the number stands inside an RF reference as typed (a broken one: a valid RF is
    found as printed and names its invoice), the neighbours are that RF's: the RF references
    one edit from it, whose check digits vouch for the fix (`CandidateIndex.typed_rf_hits`).

    With no payer known, the amount alone backs a fit only when a chance fit is unlikely:
    premiums repeat, and a number has tens of neighbours. The neighbours open in the currency
    times the share of the other open invoices due exactly that amount
    (`CandidateIndex.amount_share`) is how many fit by chance; above MAX_CHANCE_FITS a fit
    only ranks the suspense candidates (no plan).

    Empty when the rule does not apply or nothing fits. The evidence names both references as
    quoted and as matched (`quoted`, `matched`) and the `edit`.
    """
    if len(exact) != 1:
        return []
    hit = exact[0]
    if hit.kind != "invoice_number" or len(hit.invoices) != 1:
        return []
    quoted = hit.invoices[0]
    amount, currency = payment.amount, payment.currency
    if quoted.currency != currency or quoted.amount_due == amount:
        return []
    threshold = settings.auto_threshold
    if payer_score(payment, quoted.policyholder_id, index, payer_tokens, link) >= threshold:
        return []  # the payer backs the quoted invoice: the reference rule decides
    has_payer = bool(payer_tokens) or link is not None
    rf_hits = index.typed_rf_hits(payment.reference, hit.key)
    # (typed, its neighbour's key, the invoice, the quoted and the matched reference)
    neighbours: list[tuple[str, str, OpenInvoice, str, str]]
    if rf_hits is None:  # a plain number: its neighbours
        kind, base, amount_only = hit.kind, FUZZY_NUMBER, QUOTED_NEIGHBOUR
        neighbours = [(hit.text, key, inv, quoted.number, inv.number)
                      for key, inv in index.number_neighbours(hit.key)]  # fmt: skip
    else:  # typed as an RF: the RF references one edit from it
        if any(inv.id == quoted.id for h in rf_hits for inv in h.invoices):
            return []  # the check digits were mistyped: the number is the quoted invoice's
        kind, base = "rf_reference", FUZZY_RF_REFERENCE
        amount_only = FUZZY_RF_REFERENCE - ONE_SIDED_PENALTY
        neighbours = [(h.text, h.key, inv, h.text, inv.payment_reference)
                      for h in rf_hits for inv in h.invoices]  # fmt: skip
    chance = NO_EVIDENCE
    if not has_payer:
        near = {inv.id for _, _, inv, _, _ in neighbours if inv.currency == currency}
        chance = len(near) * index.amount_share(currency, amount)
    options: list[Option] = []
    for typed, key, inv, quoted_as, matched_as in neighbours:
        if inv.currency != currency or inv.amount_due != amount:
            continue
        if chance > MAX_CHANCE_FITS:  # a common amount: ranks the candidates only
            options.append(Option(UNCORROBORATED_FUZZY, None, "fuzzy_reference", {}, (inv.id,)))
            continue
        holder = inv.policyholder_id
        payer = NO_EVIDENCE
        if has_payer:
            if link is not None and link[0] != holder:
                continue  # a learned link names someone else
            payer = payer_score(payment, holder, index, payer_tokens, link)
            if payer < threshold:
                continue
        evidence = {
            "reference": key,
            "reference_kind": kind,
            "found_in": "remittance text",
            "text": typed,
            "edit_distance": "1",
            "amount_agrees": "true",
            "payer_agrees": "true" if has_payer else "false",
            "payer_score": f"{payer:.2f}",
            "quoted": quoted_as,
            "matched": matched_as,
            "edit": edit_kind(typed, key),
        }
        if not has_payer:
            evidence["chance_fits"] = f"{chance:.3f}"
        score = base if has_payer else amount_only
        plan = full_plan(holder, (inv,), "exact")
        options.append(Option(score, plan, "fuzzy_reference", evidence, (inv.id,)))
    return options


def linked_payer_option(
    payment: PaymentFacts, link: tuple[str, str], index: CandidateIndex, referenced: set[str]
) -> Option:
    """Rule 3: the policyholder of a learned payer link (account or name), exact amount only;
    not when the text points at other invoices (`referenced`)."""
    holder, kind = link
    pool = index.pool(holder, payment.currency)
    plan = exact_plan(payment.amount, holder, pool)
    score = LINKED_ACCOUNT if kind == "payer_account" else LINKED_NAME
    evidence = {kind: "linked", "found_in": kind.replace("_", " ")}
    if plan is not None and contradicted(plan, referenced):
        score = CONTRADICTED_CAP
        evidence["contradicted_by"] = "reference in remittance text"
    return Option(score if plan else NO_PLAN_CAP, plan, "linked_payer", evidence,
                  tuple(i.id for i in pool))  # fmt: skip


def payer_name_options(
    payment: PaymentFacts,
    index: CandidateIndex,
    settings: MatchSettings,
    payer_tokens: tuple[str, ...],
    referenced: set[str],
) -> list[Option]:
    """Rules 4 and 5: policyholders whose name is like the payer's, with an exact amount (one
    invoice or several); none when too many names are alike; not when the text points at
    other invoices (`referenced`)."""
    options: list[Option] = []
    candidates, close = index.name_candidates(payer_tokens)
    if close >= settings.max_name_candidates:
        return options
    threshold = settings.auto_threshold
    for holder in candidates:
        pool = index.pool(holder, payment.currency)
        if not pool:
            continue
        s = similarity(payer_tokens, index.holder_tokens[holder])
        if s < NAME_CANDIDATE_MIN:
            continue
        plan = exact_plan(payment.amount, holder, pool)
        score = min(NAME_MATCH_MAX, s) if plan is not None else NAME_NO_PLAN_FACTOR * s
        is_contradicted = plan is not None and contradicted(plan, referenced)
        if is_contradicted:
            score = min(score, CONTRADICTED_CAP)
        # Evidence is read only from the option that posts: none below the threshold.
        found: dict[str, str] = {}
        if score >= threshold:
            found = {
                "payer_name": payment.payer_name or "",
                "policyholder_name": index.holders[holder].name,
                "name_score": f"{s:.2f}",
                "similar_names": str(close),
            }
            if is_contradicted:
                found["contradicted_by"] = "reference in remittance text"
        ids = tuple(a for a, _ in plan.allocations) if plan else tuple(i.id for i in pool)
        options.append(Option(score, plan, "payer_name", found, ids))
    return options


def contradicted(plan: Plan, referenced: set[str]) -> bool:
    """The text points at invoices and the plan pays none of them."""
    return bool(referenced) and not any(i in referenced for i, _ in plan.allocations)
