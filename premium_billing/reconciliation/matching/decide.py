"""The decision: what one payment pays. `match_payment` applies the rules (`rules`) in order
of confidence and posts the single best option that scores at least the threshold and is not
ambiguous; otherwise the payment stays in suspense with its ranked candidates.

Corroboration: a reference match auto-posts only when the payer or the amount agrees; a fuzzy
reference only when exactly one candidate is corroborated; a payer-only match only with an
exact amount. Never across currencies. A quoted invoice number whose amount disagrees and
that the payer does not back may be a typo naming another real invoice: when an invoice one
edit away fits (`rules.quoted_neighbour_options`), the quoted invoice never takes the money.
With no payer known, exactly one fit is the match and several leave the payment in suspense
(so does one fit when the amount reaches the quoted invoice too: a write-off, or with others
of its policyholder's); a payer backing the fits leaves the choice to the one-edit rule, as
for any corrected reference. The common case (one exact reference, exact amount,
payer agrees) is decided without building any option (`rules.fast_exact`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from premium_billing.reconciliation.matching.candidates import rank_candidates
from premium_billing.reconciliation.matching.index import CandidateIndex, Hit
from premium_billing.reconciliation.matching.normalise import name_tokens
from premium_billing.reconciliation.matching.rules import (
    Option,
    corroborated_single,
    fast_exact,
    fuzzy_reference_options,
    is_duplicate,
    linked_payer_option,
    payer_name_options,
    quoted_neighbour_options,
    reference_options,
    stripe_option,
)
from premium_billing.reconciliation.matching.scores import CERTAIN, NO_EVIDENCE, SCORE_DIGITS
from premium_billing.reconciliation.matching.types import (
    DEFAULT_SETTINGS,
    Candidate,
    MatchDecision,
    MatchSettings,
    PaymentFacts,
    new_candidate,
    new_decision,
)


def ranked(options: Iterable[Option], limit: int) -> tuple[Candidate, ...]:
    """The candidates of a match: the best (rounded) score of each invoice among the rules'
    options, highest first, then by invoice id; the reason says which rule saw it."""
    best: dict[str, tuple[float, str]] = {}
    for opt in options:
        for inv_id in opt.invoice_ids:
            cur = best.get(inv_id)
            if cur is None or opt.score > cur[0]:
                best[inv_id] = (round(opt.score, SCORE_DIGITS), opt.rule)
    order = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    reasons = RULE_REASONS
    return tuple(
        new_candidate(inv_id, score, rule, reasons.get(rule, rule))
        for inv_id, (score, rule) in order[:limit]
    )


# What each rule saw of a candidate, in words (the candidates of a match).
RULE_REASONS = {
    "stripe_metadata": "named by the Stripe metadata",
    "reference": "its number or RF reference is in the text",
    "fuzzy_reference": "a reference in the text is one edit from its number or RF reference",
    "policy_number": "its policy number is in the text",
    "fuzzy_policy_number": "a reference in the text is one edit from its policy number",
    "linked_payer": "the payer is linked to the policyholder",
    "payer_name": "payer name like the policyholder's",
}


def decide(
    payment: PaymentFacts,
    options: list[Option],
    settings: MatchSettings,
    everything: list[Option],
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
    return new_decision(
        payment.id, plan.outcome, plan.holder, plan.allocations, plan.credit, plan.write_offs,
        best.rule, round(best.score, SCORE_DIGITS), dict(best.evidence, allocation=plan.how),
        ranked(everything, settings.max_candidates),
    )  # fmt: skip


def match_payment(
    payment: PaymentFacts,
    index: CandidateIndex,
    settings: MatchSettings | None = None,
    recent_payments: Iterable[PaymentFacts] = (),
) -> MatchDecision:
    """Decide what one payment pays. Pure: the index and the inputs are not changed."""
    settings = settings or DEFAULT_SETTINGS
    if payment.is_return:
        return MatchDecision(
            payment.id, "return", rule="return", score=CERTAIN,
            evidence={"reason": "return or reversal: never matched as new money"},
        )  # fmt: skip
    payer_tokens = name_tokens(payment.payer_name) if payment.payer_name else ()
    original = is_duplicate(payment, recent_payments, settings, payer_tokens)
    if original is not None:
        # Listed for a person who finds it is new money after all.
        return MatchDecision(
            payment.id, "duplicate", rule="duplicate", score=CERTAIN,
            evidence={
                "duplicate_of": original.id,
                "window_days": str(settings.duplicate_window_days),
            },
            candidates=rank_candidates(payment, index, settings, payer_tokens),
        )  # fmt: skip
    if payment.amount <= 0 or payment.currency not in index.currencies:
        reason = "no amount" if payment.amount <= 0 else "no open invoice in this currency"
        return MatchDecision(payment.id, "suspense", rule="none", evidence={"reason": reason})

    threshold = settings.auto_threshold
    everything: list[Option] = []
    # Invoices the remittance text points at (any currency). A payer-only match that
    # disagrees with them is contradicted by the text and does not auto-post.
    referenced: set[str] = set()
    link = index.link_of(payment, payer_tokens)

    # 1. Stripe metadata.
    if payment.stripe_invoice_id:
        option = stripe_option(payment, index, settings)
        if option is not None:
            decision = decide(payment, [option], settings, [option])
            if decision is not None:
                return decision

    # 2. References in the remittance text, exact first, then one edit away.
    fits: list[Option] = []  # invoices one edit from a quoted number that fit the amount
    hits: list[Hit] | None = []  # every reference found in the text (None: not all looked up)
    if payment.reference:
        hits = None
        exact = index.find_references(payment.reference, fuzzy=False)
        options: list[Option] = []
        if exact:
            fast = fast_exact(payment, exact, index, settings, payer_tokens, link)
            if fast is not None:
                return fast
            referenced.update(i.id for h in exact for i in h.invoices)
            options = reference_options(payment, exact, index, settings, payer_tokens, link)
            everything.extend(options)
            found = quoted_neighbour_options(payment, exact, index, settings, payer_tokens, link)
            fits = [o for o in found if o.plan is not None]
            if not fits:  # none, or only by chance (they rank the candidates)
                everything.extend(found)
                decision = decide(payment, options, settings, everything)
                if decision is not None:
                    return decision
            elif fits[0].evidence["payer_agrees"] == "true":
                # The payer backs invoices one edit away, not the quoted one: the one-edit
                # rule below decides, as for any corrected reference (an RF's check digits
                # included); the quoted invoice takes no money.
                options = []
            else:
                # Only the amount backs them: one fit posts, unless the amount reaches the
                # quoted invoice too (a write-off, or with others of its policyholder's).
                everything.extend(fits)
                rival = any(o.plan is not None and o.score >= threshold for o in options)
                if len(fits) == 1 and not rival:
                    decision = decide(payment, fits, settings, everything)
                    if decision is not None:
                        return decision
                reason = (f"the quoted invoice's amount disagrees; {len(fits)} invoice(s) one"
                          " edit from its number fit the amount")  # fmt: skip
                return suspense(payment, index, everything, settings, reason, payer_tokens, hits)
        if not any(o.plan is not None and o.score >= threshold for o in options):
            fuzzy = index.find_references(payment.reference, fuzzy=True)
            hits = exact + fuzzy
            options = fuzzy_reference_options(
                payment, exact, index, settings, payer_tokens, link, fuzzy
            )
            everything.extend(options)
            referenced.update(i for o in options if o.score >= threshold for i in o.invoice_ids)
            decision = decide(payment, corroborated_single(options, settings), settings,
                              everything)  # fmt: skip
            if decision is not None:
                return quoting(decision, fits)

    # 3. A learned payer link, exact amount only.
    if link is not None:
        option = linked_payer_option(payment, link, index, referenced)
        everything.append(option)
        decision = decide(payment, [option], settings, everything)
        if decision is not None:
            return decision

    # 4./5. Fuzzy payer name with an exact amount (one invoice or several).
    if payer_tokens:
        options = payer_name_options(payment, index, settings, payer_tokens, referenced)
        everything.extend(options)
        decision = decide(payment, options, settings, everything)
        if decision is not None:
            return decision

    reason = "no corroborated, unambiguous candidate"
    return suspense(payment, index, everything, settings, reason, payer_tokens, hits)


def quoting(decision: MatchDecision, fits: list[Option]) -> MatchDecision:
    """The decision with the quoted and the matched number (`quoted`, `matched`, `edit`) when
    it pays the one invoice one edit from a quoted number that `fits` names."""
    for fit in fits:
        if fit.plan is not None and decision.allocations == fit.plan.allocations:
            found = {k: fit.evidence[k] for k in ("quoted", "matched", "edit")}
            return replace(decision, evidence={**decision.evidence, **found})
    return decision


def suspense(
    payment: PaymentFacts,
    index: CandidateIndex,
    everything: list[Option],
    settings: MatchSettings,
    reason: str,
    payer_tokens: tuple[str, ...],
    hits: list[Hit] | None = None,
) -> MatchDecision:
    """The payment for a person: the best score of the rules' options, and the ranked
    candidates with their reasons (`candidates.rank_candidates`; `hits`: the references the
    rules found in the text, None when they did not look them all up)."""
    seen = {i for o in everything for i in o.invoice_ids}
    return MatchDecision(
        payment.id,
        "suspense",
        rule="none",
        score=round(max((o.score for o in everything), default=NO_EVIDENCE), SCORE_DIGITS),
        evidence={"reason": reason},
        candidates=rank_candidates(payment, index, settings, payer_tokens, seen, hits),
    )
