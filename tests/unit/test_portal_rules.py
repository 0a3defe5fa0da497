"""The portal's pure rules and the Stripe rules of a payment naming several invoices."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import given
from hypothesis import strategies as st

from premium_billing.portal.rules import (
    OpenInvoice,
    autopay_state,
    days_overdue,
    is_overdue,
    overdue_payments,
)
from premium_billing.stripe_billing.rules import (
    MAX_INVOICES_NAMED,
    InvoiceSeen,
    invoice_list,
    invoices_named,
    mismatch_many,
    reference_of,
)

TODAY = date(2026, 11, 30)


def test_overdue_is_payable_with_something_due_before_today():
    due = TODAY - timedelta(days=1)
    assert is_overdue(OpenInvoice(1, "USD", "open", due, 100), TODAY)
    assert is_overdue(OpenInvoice(1, "USD", "partially_paid", due, 1), TODAY)
    assert not is_overdue(OpenInvoice(1, "USD", "open", TODAY, 100), TODAY)
    assert not is_overdue(OpenInvoice(1, "USD", "paid", due, 0), TODAY)
    assert not is_overdue(OpenInvoice(1, "USD", "void", due, 100), TODAY)
    assert not is_overdue(OpenInvoice(1, "USD", "open", due, 0), TODAY)
    assert days_overdue(TODAY - timedelta(days=12), TODAY) == 12
    assert days_overdue(TODAY + timedelta(days=3), TODAY) == 0


invoices = st.lists(
    st.builds(
        OpenInvoice,
        id=st.integers(1, 10_000),
        currency=st.sampled_from(["USD", "EUR"]),
        status=st.sampled_from(["open", "partially_paid", "paid", "void", "written_off"]),
        due_date=st.dates(TODAY - timedelta(days=400), TODAY + timedelta(days=30)),
        amount_due=st.integers(0, 10**7),
    ),
    max_size=80,
    unique_by=lambda i: i.id,
)


@given(invoices)
def test_pay_everything_overdue_sums_the_overdue_oldest_first(rows):
    plans = overdue_payments(rows, TODAY)
    assert [p.currency for p in plans] == sorted({p.currency for p in plans})
    for plan in plans:
        overdue = sorted(
            (i for i in rows if i.currency == plan.currency and is_overdue(i, TODAY)),
            key=lambda i: (i.due_date, i.id),
        )
        taken = overdue[:MAX_INVOICES_NAMED]
        assert plan.invoice_ids == tuple(i.id for i in taken)
        assert plan.amount == sum(i.amount_due for i in taken) > 0
        assert plan.left_out == len(overdue) - len(taken)
        assert len(invoice_list(plan.invoice_ids)) <= 500  # one Stripe metadata value
    currencies = {i.currency for i in rows if is_overdue(i, TODAY)}
    assert {p.currency for p in plans} == currencies


def test_autopay_reads_on_off_or_waiting_for_a_card():
    assert autopay_state([], True) == "off"
    assert autopay_state([False, False], True) == "off"
    assert autopay_state([False, True], True) == "on"
    assert autopay_state([True], False) == "waiting_for_card"


def test_the_metadata_names_several_invoices():
    assert invoice_list([3, 12]) == "inv_3,inv_12"
    assert invoices_named({"invoice_ids": "inv_3,inv_12"}) == [3, 12]
    assert invoices_named({"invoice_id": "inv_3"}) is None
    assert invoices_named(None) is None
    for unreadable in ("inv_3,pol_4", "inv_3,,inv_4", "inv_3,inv_3", "", "inv_03", 7):
        assert invoices_named({"invoice_ids": unreadable}) == []
    assert reference_of({"invoice_ids": "inv_3,inv_12", "invoice_numbers": "A,B"}) == "A,B"


def seen(due: int, currency: str = "USD", status: str = "open") -> InvoiceSeen:
    return InvoiceSeen(currency, status, due, due)


def test_a_payment_naming_several_pays_each_exactly_its_due():
    assert mismatch_many({}, 300, "USD", [seen(100), seen(200)]) is None
    assert mismatch_many({}, 299, "USD", [seen(100), seen(200)]) == (
        "amount 299, the invoices named have 300 due"
    )
    assert mismatch_many({}, 301, "USD", [seen(100), seen(200)]) is not None
    assert mismatch_many({}, 300, "USD", [seen(100), None]) == "unknown invoice (number 2 named)"
    assert mismatch_many({}, 300, "USD", [seen(100), seen(200, "EUR")]) is not None
    assert mismatch_many({}, 100, "USD", [seen(100), seen(0, status="paid")]) is not None
    assert mismatch_many({}, 100, "USD", []) is not None


@given(st.lists(st.integers(1, 10**8), min_size=1, max_size=30), st.integers(-5, 5))
def test_only_the_exact_sum_is_applied(dues, delta):
    why = mismatch_many({}, sum(dues) + delta, "USD", [seen(d) for d in dues])
    assert (why is None) == (delta == 0)
