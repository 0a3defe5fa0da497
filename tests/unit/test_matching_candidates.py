"""Suspense that helps a person (issue 12, item 5): every payment the matcher leaves for a
person lists up to five ranked candidates in its currency, scored on reference, payer and
amount closeness, each with its reason; name-only and typo lines among them."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from premium_billing.invoicing.rules import payment_reference
from premium_billing.reconciliation.matching import (
    CandidateIndex,
    MatchSettings,
    OpenInvoice,
    PayerLink,
    PaymentFacts,
    Policyholder,
    match_payment,
    name_tokens,
    rank_candidates,
)
from premium_billing.reconciliation.matching.scores import (
    AMOUNT_WEIGHT,
    PAYER_WEIGHT,
    REF_EXACT,
    REFERENCE_WEIGHT,
)

S = MatchSettings()
DAY = date(2026, 3, 10)


def inv(num: int, holder: str, amount: int, currency: str = "USD", month: int = 1) -> OpenInvoice:
    number = f"INV-2026-{num:06d}"
    return OpenInvoice(f"inv{num}", number, payment_reference(number), f"PET-{num:06d}", holder,
                       currency, amount, date(2026, month, 1), amount)  # fmt: skip


def pay(amount: int, reference: str = "", payer: str | None = None, currency: str = "USD",
        account: str | None = None) -> PaymentFacts:  # fmt: skip
    return PaymentFacts("p1", amount, currency, DAY, payer, account, reference)


HOLDERS = [Policyholder(f"js{n}", "John Smith") for n in range(30)] + [
    Policyholder("mj", "Mary Jones"),
    Policyholder("pp", "Peter Parker"),
    Policyholder("z", "Filler Ltd"),
]
# 30 John Smiths (too many for a name match), each with two invoices; Mary Jones with one.
BOOK = [inv(100 + 2 * n, f"js{n}", 4000 + n, month=1) for n in range(30)]
BOOK += [inv(101 + 2 * n, f"js{n}", 4999, month=2) for n in range(30)]
BOOK += [inv(300, "mj", 7250), inv(301, "mj", 7250, month=2), inv(302, "pp", 7250)]
BOOK += [inv(500, "z", 6100, currency="EUR"), inv(501, "z", 6099)]


def index(links: list[PayerLink] | None = None) -> CandidateIndex:
    return CandidateIndex.build(BOOK, HOLDERS, links or [])


def test_a_name_only_line_of_a_common_name_lists_the_holders_due_the_amount():
    """Thirty John Smiths: no name match posts, and before, no candidate was listed. Now the
    one due exactly the amount comes first, with its reasons."""
    d = match_payment(pay(4007, "premium", "J Smith"), index(), S)
    assert d.outcome == "suspense" and d.candidates
    first = d.candidates[0]
    assert first.invoice_id == "inv114"  # js7's 40.07
    assert first.rule == "payer_name"
    assert "payer name like the policyholder's" in first.reason
    assert "amount equal to what is due" in first.reason
    assert len(d.candidates) == S.max_candidates
    scores = [c.score for c in d.candidates]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1]


def test_a_typo_lists_the_invoice_one_edit_away_with_the_edit():
    d = match_payment(pay(7250, "INV 2026 000320", "Somebody Else"), index(), S)
    assert d.outcome == "suspense"
    ids = [c.invoice_id for c in d.candidates]
    assert {"inv300", "inv302"} <= set(ids)
    reason = next(c.reason for c in d.candidates if c.invoice_id == "inv300")
    assert "one edit from its number INV-2026-000300" in reason
    assert "amount equal to what is due" in reason


def test_reference_payer_and_amount_together_rank_first():
    d = rank_candidates(pay(7250, "INV-2026-000301", "Mary Jones"), index(), S,
                        name_tokens("Mary Jones"))  # fmt: skip
    assert d[0].invoice_id == "inv301" and d[0].rule == "reference"
    assert d[0].score == round(REFERENCE_WEIGHT * REF_EXACT + PAYER_WEIGHT + AMOUNT_WEIGHT, 4)
    assert d[0].reason == (
        "quotes its number INV-2026-000301; payer name like the policyholder's (1.00); "
        "amount equal to what is due (as on 3 open invoice(s) in all)"
    )
    # Her other invoice next (payer and amount), then Peter Parker's (amount alone).
    assert [c.invoice_id for c in d[:3]] == ["inv301", "inv300", "inv302"]


def test_a_learned_link_is_payer_evidence():
    links = [PayerLink("GB00BANK1", "pp")]
    d = rank_candidates(pay(7000, "", None, account="GB00 BANK 1"), index(links), S, ())
    assert d[0].invoice_id == "inv302" and d[0].rule == "linked_payer"
    assert d[0].reason.startswith("the payer's bank account is linked to the policyholder")


def test_nothing_to_go_on_but_the_amount_lists_the_nearest_amounts_due():
    d = match_payment(pay(6100, "thanks", "Zed Unknown"), index(), S)
    assert d.outcome == "suspense"
    assert d.candidates[0].invoice_id == "inv501"  # 60.99: nearest in USD (60.00 EUR is not)
    assert d.candidates[0].rule == "amount"
    assert "pays 100% of what is due" not in d.candidates[0].reason
    assert all(c.invoice_id != "inv500" for c in d.candidates)


def test_a_likely_duplicate_lists_its_candidates_too():
    first = pay(7250, "INV-2026-000302", "Peter Parker")
    again = PaymentFacts("p2", 7250, "USD", DAY, "Peter Parker", None, "INV-2026-000302")
    d = match_payment(again, index(), S, recent_payments=[first])
    assert d.outcome == "duplicate"
    assert d.candidates[0].invoice_id == "inv302"


def test_a_currency_without_open_invoices_has_no_candidate():
    d = match_payment(pay(7250, "INV-2026-000302", "Peter Parker", currency="CHF"), index(), S)
    assert d.outcome == "suspense" and d.candidates == ()


@given(
    amount=st.integers(min_value=1, max_value=20000),
    text=st.sampled_from(["", "premium", "INV-2026-000300", "INV 2026 000310", "PET-000301"]),
    payer=st.sampled_from([None, "J Smith", "Mary Jones", "M Jonse", "Nobody"]),
    currency=st.sampled_from(["USD", "EUR"]),
)
def test_property_candidates_are_few_ranked_reasoned_and_in_the_currency(
    amount, text, payer, currency
):
    idx = index()
    got = rank_candidates(pay(amount, text, payer, currency), idx, S,
                          name_tokens(payer) if payer else ())  # fmt: skip
    assert 0 < len(got) <= S.max_candidates
    assert len({c.invoice_id for c in got}) == len(got)
    assert all(idx.invoices[c.invoice_id].currency == currency for c in got)
    assert all(0 <= c.score <= 1 and c.reason and c.rule for c in got)
    assert [c.score for c in got] == sorted((c.score for c in got), reverse=True)
