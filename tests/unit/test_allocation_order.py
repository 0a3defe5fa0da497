"""The allocation order (ALLOCATION_ORDER, issue 12 item 3): a payment naming one installment
of a policy while an older one is open settles the oldest first; and the Stripe metadata rule
in that order (a payment for an installment an earlier payment already settled settles the
policy's next ones)."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from premium_billing.config import Settings, SettingsError
from premium_billing.payments.rules import Installment, allocation_order
from premium_billing.stripe_billing.rules import InvoiceSeen, mismatch

JAN = date(2026, 1, 31)


def installments(*dues: int, policy: int = 1, first_id: int = 1) -> list[Installment]:
    """Monthly installments of one policy, oldest first, ids from `first_id`."""
    return [
        Installment(first_id + n, policy, JAN + timedelta(days=30 * n), due)
        for n, due in enumerate(dues)
    ]


def test_a_payment_naming_a_later_installment_settles_the_oldest_first():
    book = installments(5000, 5000, 5000)
    assert allocation_order([(3, 5000)], book) == [(1, 5000)]
    assert allocation_order([(2, 7000)], installments(5000, 5000)) == [(1, 5000), (2, 2000)]
    assert allocation_order([(3, 3000)], book) == [(1, 3000)]  # partial: the oldest, partly


def test_as_named_and_a_named_oldest_installment_leave_the_allocations_as_they_are():
    book = installments(5000, 5000, 5000)
    assert allocation_order([(3, 5000)], book, "as_named") == [(3, 5000)]
    assert allocation_order([(1, 5000)], book) == [(1, 5000)]
    assert allocation_order([(1, 5000), (2, 5000)], book) == [(1, 5000), (2, 5000)]


def test_only_installments_with_something_due_take_money():
    book = installments(0, 2000, 5000)  # the first is paid
    assert allocation_order([(3, 5000)], book) == [(2, 2000), (3, 3000)]
    # The named installment itself paid meanwhile: the money goes to what the policy owes.
    assert allocation_order([(1, 4000)], book) == [(2, 2000), (3, 2000)]


def test_each_policy_keeps_the_amount_named_on_it():
    book = installments(5000, 5000, policy=1) + installments(3000, 3000, policy=2, first_id=10)
    assert allocation_order([(2, 5000), (11, 3000)], book) == [(1, 5000), (10, 3000)]


def test_same_due_date_the_lowest_id_first():
    day = date(2026, 3, 1)
    book = [Installment(7, 1, day, 100), Installment(4, 1, day, 100)]
    assert allocation_order([(7, 100)], book) == [(4, 100)]


def test_what_cannot_be_ordered_is_left_as_named_for_posting_to_refuse():
    book = installments(5000, 5000)
    assert allocation_order([(9, 100)], book) == [(9, 100)]  # not an installment known here
    assert allocation_order([(2, 0)], book) == [(2, 0)]  # not an amount
    assert allocation_order([(2, 10001)], book) == [(2, 10001)]  # more than the policy owes
    both = [(2, 100), (2, 200)]
    assert allocation_order(both, book, "as_named") == both


def test_the_setting_is_checked():
    assert Settings().allocation_order == "oldest_first"
    assert Settings.from_env({"ALLOCATION_ORDER": "as_named"}).allocation_order == "as_named"
    try:
        Settings.from_env({"ALLOCATION_ORDER": "newest_first"})
    except SettingsError as error:
        assert "ALLOCATION_ORDER" in str(error)
    else:
        raise AssertionError("an unknown ALLOCATION_ORDER was accepted")


dues = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=6)


@st.composite
def books(draw: st.DrawFn) -> tuple[list[Installment], list[tuple[int, int]]]:
    """Installments of up to three policies (due dates and ids shuffled) and allocations
    that fit them: each named amount at most what its invoice has due."""
    book: list[Installment] = []
    next_id = 1
    for policy in range(1, draw(st.integers(min_value=1, max_value=3)) + 1):
        for due in draw(dues):
            day = JAN + timedelta(days=draw(st.integers(min_value=0, max_value=400)))
            book.append(Installment(next_id, policy, day, due))
            next_id += 1
    ids = draw(st.permutations([i.invoice_id for i in book]))
    book = [Installment(new, i.policy_id, i.due_date, i.amount_due)
            for new, i in zip(ids, book, strict=True)]  # fmt: skip
    open_ = [i for i in book if i.amount_due > 0]
    named = draw(st.lists(st.sampled_from(open_), max_size=4, unique=True)) if open_ else []
    requested = [(i.invoice_id, draw(st.integers(1, i.amount_due))) for i in named]
    return book, requested


def _age(i: Installment) -> tuple[date, int]:
    return i.due_date, i.invoice_id


@given(books())
def test_property_oldest_first_per_policy(case):
    book, requested = case
    by_id = {i.invoice_id: i for i in book}
    out = allocation_order(requested, book)
    # Money: each policy gets exactly what was named on it; nothing beyond what is due.
    for policy in {i.policy_id for i in book}:
        named = sum(a for i, a in requested if by_id[i].policy_id == policy)
        assert sum(a for i, a in out if by_id[i].policy_id == policy) == named
    assert all(0 < a <= by_id[i].amount_due for i, a in out)
    assert len({i for i, _ in out}) == len(out)
    # Order: within a policy, an installment takes money only when every older one with
    # something due is settled in full.
    for invoice_id, _ in out:
        inv = by_id[invoice_id]
        for older in book:
            if (
                older.policy_id == inv.policy_id
                and older.amount_due > 0
                and _age(older) < _age(inv)
            ):
                assert dict(out).get(older.invoice_id) == older.amount_due
    # As named: the allocations as they were.
    assert allocation_order(requested, book, "as_named") == requested


@given(books())
def test_property_ordering_twice_changes_nothing(case):
    book, requested = case
    once = allocation_order(requested, book)
    assert sorted(allocation_order(once, book)) == sorted(once)


# ----------------------------------------------------------------------------- Stripe


def test_the_stripe_rule_in_oldest_first_order_checks_the_amount_against_the_policy():
    meta = {"invoice_id": "inv_2"}
    named = InvoiceSeen("USD", "open", 5000, 5000)
    assert mismatch(meta, 5000, "USD", named, policy_due=10000) is None
    # The named installment was settled by a payment naming another: its payment settles
    # the policy's next installments.
    paid = InvoiceSeen("USD", "paid", 0, 5000)
    assert mismatch(meta, 5000, "USD", paid, policy_due=5000) is None
    assert mismatch(meta, 5000, "USD", paid, policy_due=4999) == "the invoice is paid"
    partly = InvoiceSeen("USD", "partially_paid", 2000, 5000)
    assert mismatch(meta, 5000, "USD", partly, policy_due=7000) is None
    assert mismatch(meta, 5000, "USD", partly, policy_due=4000) == (
        "amount 5000, the invoice's policy has 4000 due"
    )
    # Still refused: less than the invoice has due, more than its total, void, currency.
    assert mismatch(meta, 4999, "USD", named, policy_due=10000) == (
        "amount 4999, the invoice has 5000 due"
    )
    assert mismatch(meta, 5001, "USD", named, policy_due=10000) == (
        "amount 5001, more than the invoice's total of 5000"
    )
    void = InvoiceSeen("USD", "void", 0, 5000)
    assert mismatch(meta, 5000, "USD", void, policy_due=5000) == "the invoice is void"
    assert mismatch(meta, 5000, "EUR", named, policy_due=10000) == (
        "currency EUR, the invoice is in USD"
    )
    assert mismatch(meta, 5000, "USD", None, policy_due=None) == "unknown invoice"
    # As named (no policy_due): exactly the amount the invoice has due, as before.
    assert mismatch(meta, 5000, "USD", paid) == "the invoice is paid"
    assert mismatch(meta, 5000, "USD", partly) == "amount 5000, the invoice has 2000 due"
