"""Ranked candidates for a person: the open invoices a payment left in suspense may pay, in
its currency, best first, each with its score and its reason, so that a manual match is one
step (`rank_candidates`).

Each candidate is scored on three kinds of closeness, each 0..1 with its reason (`scores`):

  reference  the text quotes its invoice number or RF reference (REF_EXACT), holds one an
             edit away (REF_RF_ONE_EDIT, REF_ONE_EDIT; REF_NEIGHBOUR when it quotes another
             as printed), quotes its policy number (REF_POLICY) or one an edit away
             (REF_POLICY_ONE_EDIT);
  payer      a learned link of the payer's bank account or name to its policyholder (1), or
             the payer's name like the policyholder's (its similarity, at least
             CANDIDATE_NAME_MIN);
  amount     what is due (AMOUNT_EQUAL), short by a remainder posting would write off
             (AMOUNT_WITHIN_TOLERANCE), with others of the policyholder's invoices paid
             exactly (AMOUNT_SEVERAL), else AMOUNT_OTHER x the smaller over the larger;

score = REFERENCE_WEIGHT x reference + PAYER_WEIGHT x payer + AMOUNT_WEIGHT x amount.

Looked at: the invoices the text points at (exactly or one edit away), the open invoices of
the policyholders the payer is linked to or named like (the payer's name blocks, as the
payer rules look; of a very common name, only those due exactly the amount) and those the
matching rules saw; an invoice among them with no reference or payer evidence only when
due exactly the amount. Fewer than `max_candidates`: the list is filled with the invoices
due the amounts nearest the payment's (the amount alone). Every invoice looked at is scored
in numbers; the words of a reason are written for those kept only.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from premium_billing.invoicing.rules import within_tolerance
from premium_billing.reconciliation.matching.index import CandidateIndex, Hit, edit_kind
from premium_billing.reconciliation.matching.plans import exact_plan
from premium_billing.reconciliation.matching.scores import (
    AMOUNT_EQUAL,
    AMOUNT_OTHER,
    AMOUNT_SEVERAL,
    AMOUNT_WEIGHT,
    AMOUNT_WITHIN_TOLERANCE,
    CANDIDATE_NAME_MIN,
    CANDIDATE_NAME_POOL,
    CERTAIN,
    NO_EVIDENCE,
    PAYER_WEIGHT,
    REF_EXACT,
    REF_NEIGHBOUR,
    REF_ONE_EDIT,
    REF_POLICY,
    REF_POLICY_ONE_EDIT,
    REF_RF_ONE_EDIT,
    REFERENCE_WEIGHT,
    SCORE_DIGITS,
)
from premium_billing.reconciliation.matching.similarity import may_agree, similarity
from premium_billing.reconciliation.matching.types import (
    Candidate,
    MatchSettings,
    OpenInvoice,
    PaymentFacts,
    new_candidate,
)

# How the payer is known to be an invoice's policyholder: (closeness, rule); the rule says
# how ("linked_payer" by "payer_account" or "payer_name" link, or "payer_name" alike).
Payer = tuple[float, str, str]
_NO_PAYER: Payer = (NO_EVIDENCE, "", "")
_NO_HIT: tuple[float, Hit | None] = (NO_EVIDENCE, None)


def rank_candidates(
    payment: PaymentFacts,
    index: CandidateIndex,
    settings: MatchSettings,
    payer_tokens: tuple[str, ...],
    seen: Iterable[str] = (),
    hits: Sequence[Hit] | None = None,
) -> tuple[Candidate, ...]:
    """Up to `settings.max_candidates` open invoices in the payment's currency, best score
    first (then oldest), each with the evidence that names it best (`rule`) and its reason.
    `seen`: invoice ids the matching rules looked at (they are scored too); `hits`: the
    references found in the text, exactly and one edit away, when the rules looked already
    (None: they are looked up here). Pure."""
    currency, amount = payment.currency, payment.amount
    if hits is None:
        hits = _hits(payment, index)
    references: dict[str, tuple[float, Hit | None]] = {}
    # A number one edit from others is found in the text with them: when the text quotes a
    # reference as printed, its neighbours are weaker evidence.
    quoted = False
    for hit in hits:
        if hit.distance == 0 and hit.kind != "policy_number":
            quoted = quoted or any(i.currency == currency for i in hit.invoices)
    for hit in hits:
        closeness = _hit_closeness(hit, quoted)
        for inv in hit.invoices:
            if inv.currency == currency and closeness > references.get(inv.id, _NO_HIT)[0]:
                references[inv.id] = (closeness, hit)
    payers = _payers(payment, index, payer_tokens)
    several: set[str] = set()
    wanted: dict[str, OpenInvoice] = {}
    invoices = index.invoices
    for inv_id in (*references, *seen):
        found = invoices.get(inv_id)
        if found is not None:
            wanted[inv_id] = found
    for holder in payers:
        pool = index.pool(holder, currency)
        for inv in pool:
            wanted[inv.id] = inv
        plan = exact_plan(amount, holder, pool) if len(pool) > 1 else None
        if plan is not None and len(plan.allocations) > 1:
            several.update(i for i, _ in plan.allocations)
    alike = len(index.amount_invoices(currency, amount))
    scored: list[tuple[float, OpenInvoice]] = []
    tokens_of = index.holder_tokens
    for inv in wanted.values():
        if inv.currency != currency:
            continue  # never across currencies
        ref = references.get(inv.id, _NO_HIT)[0]
        payer = payers.get(inv.policyholder_id)
        if payer is None:
            if ref == NO_EVIDENCE:
                payer = _NO_PAYER  # a name alike is in the payer's name blocks (`_payers`)
            else:  # the text names it: is its policyholder the payer, by another name?
                payer = payers[inv.policyholder_id] = _alike(
                    payer_tokens, tokens_of.get(inv.policyholder_id)
                )
        if amount == inv.amount_due:
            money = AMOUNT_EQUAL
        else:
            money = _amount_closeness(amount, inv, inv.id in several, settings)
            if ref == NO_EVIDENCE and payer[0] == NO_EVIDENCE:
                continue  # the amount alone: only among the nearest amounts (below)
        score = REFERENCE_WEIGHT * ref + PAYER_WEIGHT * payer[0] + AMOUNT_WEIGHT * money
        scored.append((score, inv))
    if len(scored) < settings.max_candidates:  # the amount alone: the nearest amounts due
        for inv in index.nearest_amounts(currency, amount, settings.max_candidates):
            if inv.id not in wanted:
                money = _amount_closeness(amount, inv, False, settings)
                scored.append((AMOUNT_WEIGHT * money, inv))
    if len(scored) > 1:
        scored.sort(key=_rank_key)
    out = []
    for score, inv in scored[: settings.max_candidates]:
        ref_rule, ref_reason = _reference_reason(references.get(inv.id, _NO_HIT)[1], inv)
        payer = payers.get(inv.policyholder_id, _NO_PAYER)
        money_reason = _amount_reason(amount, inv, inv.id in several, settings, alike)
        rule = ref_rule or payer[1] or "amount"
        reasons = (ref_reason, _payer_reason(payer), money_reason)
        reason = "; ".join(r for r in reasons if r)
        out.append(new_candidate(inv.id, round(score, SCORE_DIGITS), rule, reason))
    return tuple(out)


def _rank_key(scored: tuple[float, OpenInvoice]) -> tuple[float, object, str, str]:
    score, inv = scored
    return -score, inv.due_date, inv.number, inv.id  # best first, then oldest (AGE_KEY)


def _hits(payment: PaymentFacts, index: CandidateIndex) -> list[Hit]:
    """The references in the text: those found as printed, or else those one edit away (the
    neighbours of a number found as printed that the rules weighed are among `seen`)."""
    if not payment.reference:
        return []
    exact = index.find_references(payment.reference, fuzzy=False)
    if any(inv.currency == payment.currency for hit in exact for inv in hit.invoices):
        return exact
    return exact + index.find_references(payment.reference, fuzzy=True)


def _hit_closeness(hit: Hit, quoted: bool) -> float:
    if hit.kind == "policy_number":
        return REF_POLICY if hit.distance == 0 else REF_POLICY_ONE_EDIT
    if hit.distance == 0:
        return REF_EXACT
    if quoted:
        return REF_NEIGHBOUR
    return REF_RF_ONE_EDIT if hit.kind == "rf_reference" else REF_ONE_EDIT


def _reference_reason(hit: Hit | None, inv: OpenInvoice) -> tuple[str, str]:
    """(rule, reason) of the best reference to the invoice in the text ("": none)."""
    if hit is None:
        return "", ""
    if hit.kind == "policy_number":
        if hit.distance == 0:
            return "policy_number", f"quotes its policy number {inv.policy_number}"
        reason = f"{hit.text} in the text is one edit from its policy number {inv.policy_number}"
        return "fuzzy_policy_number", reason
    printed = inv.payment_reference if hit.kind == "rf_reference" else inv.number
    what = "RF reference" if hit.kind == "rf_reference" else "number"
    if hit.distance == 0:
        return "reference", f"quotes its {what} {printed}"
    edit = edit_kind(hit.text, hit.key)
    return "fuzzy_reference", f"{hit.text} in the text is one edit from its {what} {printed} " \
        f"({edit})"  # fmt: skip


def _payers(
    payment: PaymentFacts, index: CandidateIndex, payer_tokens: tuple[str, ...]
) -> dict[str, Payer]:
    """{policyholder id: payer closeness} of the policyholders the payer is linked to or
    named like (of a name shared by more than CANDIDATE_NAME_POOL, only those with an
    invoice due exactly the amount)."""
    out: dict[str, Payer] = {}
    link = index.link_of(payment, payer_tokens)
    if link is not None:
        holder, kind = link
        out[holder] = (CERTAIN, "linked_payer", kind)
    if not payer_tokens:
        return out
    holders, close = index.name_candidates(payer_tokens)
    if close > CANDIDATE_NAME_POOL:  # in the order of their invoices of that amount
        first = index.amount_holders(payment.currency, payment.amount)
        holders = sorted({h for h in holders if h in first}, key=first.__getitem__)
    tokens_of = index.holder_tokens
    for holder in holders:
        if holder not in out:
            tokens = tokens_of.get(holder)
            # The payer rules weighed these names already: `similarity` remembers them.
            s = similarity(payer_tokens, tokens) if tokens else NO_EVIDENCE
            if s >= CANDIDATE_NAME_MIN:
                out[holder] = (s, "payer_name", "")
    return out


def _alike(payer_tokens: tuple[str, ...], holder: tuple[str, ...] | None) -> Payer:
    if not payer_tokens or not holder or not may_agree(payer_tokens, holder, CANDIDATE_NAME_MIN):
        return _NO_PAYER
    s = similarity(payer_tokens, holder)
    return (s, "payer_name", "") if s >= CANDIDATE_NAME_MIN else _NO_PAYER


def _payer_reason(payer: Payer) -> str:
    closeness, rule, link = payer
    if rule == "linked_payer":
        what = "bank account" if link == "payer_account" else "name"
        return f"the payer's {what} is linked to the policyholder"
    if rule:
        return f"payer name like the policyholder's ({closeness:.2f})"
    return ""


def _short_within_tolerance(amount: int, inv: OpenInvoice, settings: MatchSettings) -> bool:
    due = inv.amount_due
    total = due if inv.total is None else inv.total
    return amount < due and within_tolerance(
        due - amount, total, settings.tolerance_abs, settings.tolerance_pct
    )


def _amount_closeness(
    amount: int, inv: OpenInvoice, several: bool, settings: MatchSettings
) -> float:
    due = inv.amount_due
    if amount == due:
        return AMOUNT_EQUAL
    if _short_within_tolerance(amount, inv, settings):
        return AMOUNT_WITHIN_TOLERANCE
    if several:
        return AMOUNT_SEVERAL
    return AMOUNT_OTHER * (amount / due if amount < due else due / amount)


def _amount_reason(
    amount: int, inv: OpenInvoice, several: bool, settings: MatchSettings, alike: int
) -> str:
    due = inv.amount_due
    if amount == due:
        return f"amount equal to what is due (as on {alike} open invoice(s) in all)"
    if _short_within_tolerance(amount, inv, settings):
        return f"short of what is due by {due - amount}, within the write-off tolerance"
    if several:
        return "with others of the policyholder's, the amount pays them exactly"
    if amount < due:
        return f"pays {amount / due:.0%} of what is due"
    return f"{amount - due} more than what is due"
