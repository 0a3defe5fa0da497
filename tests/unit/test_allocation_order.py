"""The allocation order (ALLOCATION_ORDER, issue 12 item 3): a payment naming one installment
of a policy while an older one is open settles the oldest first; and the Stripe metadata rule
in that order (a payment for an installment an earlier payment already settled settles the
policy's next ones)."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from premium_billing.config import Settings, SettingsError
from premium_billing.payments.rules import (
    Installment,
    Tolerance,
    allocation_order,
    tolerance_write_offs,
)
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


# ----------------------------------------------------------------------------- a short payment

TOLERANCE = Tolerance(100, Fraction(1, 100))  # DESIGN: <= 1.00 or <= 1%


def written_off(out: list[tuple[int, int]], book: list[Installment]) -> list[tuple[int, int]]:
    """What the tolerance rule writes off after `out` (the payment fully applied)."""
    by_id = {i.invoice_id: i for i in book}
    left = {i: (by_id[i].amount_due - a, by_id[i].total or by_id[i].amount_due) for i, a in out}
    return tolerance_write_offs(0, left, TOLERANCE)


def test_a_short_payment_naming_a_later_installment_keeps_its_shortfall():
    """The bench's case (bench-reconcile 100k x 100k, line 17611): 222.78 naming the June
    installment of 223.68 (0.90 short, written off as named) while May has 165.53 left (an
    earlier partial payment settled part of it). Oldest first, May is settled and the
    0.90 is left on it, written off; June gets the rest: the policy owes what it owes as
    named (June's 165.53), not 0.90 more."""
    book = [
        Installment(1, 1, date(2026, 5, 1), 16553, 22368),
        Installment(2, 1, date(2026, 6, 1), 22368, 22368),
    ]
    as_named = written_off([(2, 22278)], book)
    assert as_named == [(2, 90)]
    out = allocation_order([(2, 22278)], book, write_offs=as_named, tolerance=TOLERANCE)
    assert out == [(1, 16463), (2, 5815)]
    assert written_off(out, book) == [(1, 90)]
    # Without the verdict, the money alone: May settled, June far from it, nothing written off.
    plain = allocation_order([(2, 22278)], book)
    assert plain == [(1, 16553), (2, 5725)] and written_off(plain, book) == []


def test_the_named_installment_partly_paid_by_money_the_order_moved_keeps_the_shortfall():
    """19.70 naming the oldest installment of 19.99 (0.29 short, the matcher's verdict on
    its snapshot) after an earlier payment naming the next one was moved onto the oldest:
    1.00 of the shortfall is not the question, the 0.29 is, and it stays on the oldest."""
    book = [
        Installment(1, 1, date(2026, 5, 1), 1600, 1999),
        Installment(2, 1, date(2026, 6, 28), 1999, 1999),
    ]
    out = allocation_order([(1, 1970)], book, write_offs=[(1, 29)], tolerance=TOLERANCE)
    assert out == [(1, 1571), (2, 399)] and written_off(out, book) == [(1, 29)]


def test_an_untouched_older_installment_takes_the_short_payment_as_before():
    book = installments(5000, 5000)
    out = allocation_order([(2, 4950)], book, write_offs=[(2, 50)], tolerance=TOLERANCE)
    assert out == [(1, 4950)] and written_off(out, book) == [(1, 50)]


def test_no_installment_to_keep_the_shortfall_on_leaves_the_money_oldest_first():
    # The older installment has no more due than the shortfall: nothing settled can keep it
    # with money on it; the plain order stands (and nothing is written off).
    book = installments(40, 5000)
    out = allocation_order([(2, 4950)], book, write_offs=[(2, 50)], tolerance=TOLERANCE)
    assert out == allocation_order([(2, 4950)], book) == [(1, 40), (2, 4910)]


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
    # any amount, or a short payment: the invoice's due less up to 1.50
    requested = [
        (
            i.invoice_id,
            draw(
                st.integers(1, i.amount_due) | st.integers(max(1, i.amount_due - 150), i.amount_due)
            ),
        )
        for i in named
    ]
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
def test_property_a_short_payment_is_as_short_in_oldest_first_order(case):
    """Paid as named with a shortfall within tolerance on its policy, the ordered plan moves
    the same money to each policy; it is the plain order, or it leaves exactly the same
    shortfall per policy for the tolerance rule to write off."""
    book, requested = case
    by_id = {i.invoice_id: i for i in book}
    merged: dict[int, int] = {}
    for i, a in requested:
        merged[i] = merged.get(i, 0) + a
    as_named = written_off(sorted(merged.items()), book)
    out = allocation_order(requested, book, write_offs=as_named, tolerance=TOLERANCE)
    plain = allocation_order(requested, book)
    assert all(0 < a <= by_id[i].amount_due for i, a in out)
    for policy in {i.policy_id for i in book}:
        mine = {i for i in by_id if by_id[i].policy_id == policy}
        named = sum(a for i, a in requested if i in mine)
        assert sum(a for i, a in out if i in mine) == named
        got = [(i, a) for i, a in out if i in mine]
        if got != [(i, a) for i, a in plain if i in mine]:
            short = sum(a for i, a in as_named if i in mine)
            assert sum(a for i, a in written_off(got, book)) == short > 0


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
