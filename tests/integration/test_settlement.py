"""Cancellation settles the account (issue 12, item 1), over real HTTP on both backends: the
final invoice of earned but unbilled premium, credit notes off open invoices, refunds of
what was paid beyond the earned premium (by check or transfer: listed, marked paid), a
lapse settled alike, a reinstatement reversing it exactly, a premium cut credited. The
books are checked after each step (`ledger check`, `audit verify`)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from premium_billing.cancellations import service
from premium_billing.clock import business_date
from premium_billing.jobs.runner import run_job
from premium_billing.payments.models import InvoiceCredit, Refund
from premium_billing.policies.models import Policy

from ..factories import create_policy, create_policyholder, pet_line
from .settlement_helpers import (
    accounts,
    balances,
    books_ok,
    cancel,
    invoices_of,
    issue,
    pay_by_check,
    policy_on,
    statement,
)


def test_monthly_nothing_billed_cancelled_short_rate_is_invoiced_at_once(api, db, settings):
    """The probe: a monthly policy cancelled short rate answered a balance due, voided every
    installment, and billed nothing. Now the earned premium is a final invoice: in the
    balance, the statement and the receivable."""
    holder = create_policyholder(api)["id"]
    policy = create_policy(api, holder, policy_number="PROBE-1")  # 480.00 from 2026-01-31
    response = cancel(api, policy["id"], "2026-11-15", "short_rate")
    assert response.status_code == 201, response.text
    body = response.json()
    earned = body["earned_premium"]
    assert earned == 38887  # 288 of 365 days of 480.00, plus 10% of the unearned
    assert (body["balance_due"], body["refund_due"]) == (earned, 0)
    assert body["credits"] == [] and body["refunds"] == []
    final = api.get(f"/invoices/{body['final_invoice_id']}").json()
    assert final["total"] == final["amount_due"] == earned and final["status"] == "open"
    assert [(line["kind"], line["amount"]) for line in final["lines"]] == [("cancellation", earned)]
    schedule = api.get(f"/policies/{policy['id']}/schedule").json()["data"]
    assert {row["status"] for row in schedule} == {"void"} and len(schedule) == 12
    assert balances(api, holder) == (earned, 0)
    assert statement(api, holder)["closing_balance"] == earned
    assert accounts(api)["premium_receivable"] == earned
    books_ok(db)


def test_monthly_two_paid_march_open_cancelled_pro_rata(api, db, settings):
    """Monthly 1,000.00 from 2026-01-01 (83.37 + 11 × 83.33), January and February paid,
    March open, cancelled pro rata on 2026-03-15: earned 200.00 (73/365), paid 166.70; the
    March invoice is credited 50.03 so 33.30 stays due; April to December voided."""
    policy = policy_on(api, "monthly", number="MON-1")
    holder = policy["policyholder_id"]
    issue(db, settings, "2026-03-01")
    january, february, march = invoices_of(api, policy["id"])
    assert [i["total"] for i in (january, february, march)] == [8337, 8333, 8333]
    pay_by_check(api, january, on="2026-01-03")
    pay_by_check(api, february, on="2026-02-03")
    books_ok(db)

    response = cancel(api, policy["id"], "2026-03-15")
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["earned_premium"], body["refund_due"], body["balance_due"]) == (20000, 0, 3330)
    assert body["final_invoice_id"] is None and body["refunds"] == []
    assert body["credits"] == [{"invoice_id": march["id"], "amount": 5003}]
    after = api.get(f"/invoices/{march['id']}").json()
    assert (after["total"], after["amount_credited"], after["amount_due"], after["status"]) == (
        3330, 5003, 3330, "open",
    )  # fmt: skip
    assert after["lines"][-1]["kind"] == "premium_credit"
    assert after["lines"][-1]["amount"] == -5003
    schedule = api.get(f"/policies/{policy['id']}/schedule").json()["data"]
    assert [row["status"] for row in schedule] == ["invoiced"] * 3 + ["void"] * 9
    assert balances(api, holder) == (3330, 0)
    account = statement(api, holder)
    credit = [line for line in account["lines"] if line["kind"] == "credit"]
    assert [(line["reference"], line["amount"]) for line in credit] == [(march["number"], -5003)]
    assert account["closing_balance"] == 3330
    assert accounts(api)["premium_billed"] == -20000  # the premium earned, to the cent
    books_ok(db)


def test_annual_paid_by_check_cancelled_pro_rata_refund_listed_then_marked_paid(api, db, settings):
    """Annual 1,000.00 paid by check, cancelled on 2026-07-01: 504.11 is refunded by check,
    listed until finance marks it paid; refunds payable then back to 0."""
    today = business_date(settings.timezone).isoformat()  # the refund is owed today
    policy = policy_on(api, "annual", number="ANN-CHK")
    holder = policy["policyholder_id"]
    issue(db, settings, "2026-01-01")
    (invoice,) = invoices_of(api, policy["id"])
    payment = pay_by_check(api, invoice)
    body = cancel(api, policy["id"], "2026-07-01").json()
    assert (body["earned_premium"], body["refund_due"], body["balance_due"]) == (49589, 50411, 0)
    (refund,) = body["refunds"]
    assert (refund["amount"], refund["channel"], refund["status"]) == (50411, "check", "pending")
    assert refund["payment_id"] == payment["id"]
    assert body["credits"] == [{"invoice_id": invoice["id"], "amount": 50411}]
    after = api.get(f"/invoices/{invoice['id']}").json()
    assert (after["total"], after["amount_paid"], after["amount_due"], after["status"]) == (
        49589, 49589, 0, "paid",
    )  # fmt: skip
    assert accounts(api)["refunds_payable"] == -50411
    books_ok(db)

    listed = api.get("/refunds", params={"status": "pending", "policyholder_id": holder}).json()
    assert [r["id"] for r in listed["data"]] == [refund["id"]]
    row = listed["data"][0]
    assert (row["reason"], row["channel"], row["paid_on"]) == ("cancellation", "check", None)
    refused = api.post(f"/refunds/{refund['id']}/mark-paid", json={"method": "cash"})
    assert refused.status_code == 422 and "method" in refused.json()["errors"]
    early = api.post(
        f"/refunds/{refund['id']}/mark-paid", json={"method": "check", "paid_on": "2020-01-01"}
    )
    assert early.status_code == 422 and "paid_on" in early.json()["errors"]
    paid = api.post(
        f"/refunds/{refund['id']}/mark-paid",
        json={"method": "check", "reference": "CHK 5521", "paid_on": today},
    )
    assert paid.status_code == 200, paid.text
    assert (paid.json()["status"], paid.json()["paid_on"], paid.json()["reference"]) == (
        "succeeded", today, "CHK 5521",
    )  # fmt: skip
    again = api.post(f"/refunds/{refund['id']}/mark-paid", json={"method": "check"})
    assert again.status_code == 409
    assert api.get("/refunds", params={"status": "pending"}).json()["data"] == []
    book = accounts(api)
    assert book["refunds_payable"] == 0
    assert book["cash_bank"] == 100000 - 50411
    account = statement(api, holder)
    refunds = [line for line in account["lines"] if line["kind"] == "refund"]
    assert [(line["amount"], line["description"]) for line in refunds] == [
        (50411, "Refund paid to you (by check)")
    ]
    assert account["closing_balance"] == 0 and balances(api, holder) == (0, 0)
    books_ok(db)


def test_short_rate_refunds_453_70(api, db, settings):
    policy = policy_on(api, "annual", number="ANN-SR")
    issue(db, settings, "2026-01-01")
    (invoice,) = invoices_of(api, policy["id"])
    pay_by_check(api, invoice)
    body = cancel(api, policy["id"], "2026-07-01", "short_rate").json()
    assert (body["earned_premium"], body["refund_due"]) == (54630, 45370)
    assert [r["amount"] for r in body["refunds"]] == [45370]
    books_ok(db)


def test_refund_spread_over_payments_newest_first_each_its_own_way(api, db, settings):
    """Two payments paid the year (a check, then a transfer): the refund is taken from the
    newest first, each paid back the way it came; fees stay earned."""
    policy = policy_on(
        api, "annual", number="ANN-2PAY", fees={"policy_fee": 2500, "installment_fee": 0}
    )
    issue(db, settings, "2026-01-01")
    (invoice,) = invoices_of(api, policy["id"])
    assert invoice["total"] == 102500
    first = pay_by_check(api, invoice, 60000, on="2026-01-05")
    second = api.post(
        "/payments",
        json={"amount": 42500, "currency": "USD", "method": "bank_transfer",
              "received_on": "2026-01-20", "policyholder_id": policy["policyholder_id"]},
    ).json()  # fmt: skip
    api.post(
        f"/payments/{second['id']}/allocations",
        json={"allocations": [{"invoice_id": invoice["id"], "amount": 42500}]},
    )
    body = cancel(api, policy["id"], "2026-07-01").json()
    assert body["refund_due"] == 50411
    by_payment = {r["payment_id"]: (r["amount"], r["channel"]) for r in body["refunds"]}
    assert by_payment == {second["id"]: (42500, "transfer"), first["id"]: (7911, "check")}
    after = api.get(f"/invoices/{invoice['id']}").json()
    assert (after["total"], after["amount_paid"]) == (49589 + 2500, 49589 + 2500)
    books_ok(db)


def test_open_invoices_beyond_the_cancellation_are_voided_by_credit(api, db, settings):
    """Quarterly, every quarter invoiced ahead and nothing paid: cancelled on 2026-02-01,
    the earned premium stays due on the first invoice, the later ones are credited to
    nothing (void)."""
    policy = policy_on(api, "quarterly", number="QTR-1")
    holder = policy["policyholder_id"]
    issue(db, settings, "2026-12-31")
    q1, q2, q3, q4 = invoices_of(api, policy["id"])
    body = cancel(api, policy["id"], "2026-02-01").json()
    assert body["earned_premium"] == 8493  # 31 of 365 days
    credits = {c["invoice_id"]: c["amount"] for c in body["credits"]}
    assert credits == {q4["id"]: 25000, q3["id"]: 25000, q2["id"]: 25000, q1["id"]: 25000 - 8493}
    statuses = [api.get(f"/invoices/{i['id']}").json()["status"] for i in (q1, q2, q3, q4)]
    assert statuses == ["open", "void", "void", "void"]
    assert balances(api, holder) == (8493, 0)
    assert statement(api, holder)["closing_balance"] == 8493
    books_ok(db)


def test_lapse_settles_alike_and_a_reinstatement_reverses_it_exactly(api, db, settings):
    """A lapse (step 9 calls `service.lapse`) settles as a pro rata cancellation; the
    reinstatement reverses every credit note and cancels the unpaid refund: the invoices,
    payments and balances are what they were."""
    policy = policy_on(api, "annual", number="LAPSE-1")
    holder = policy["policyholder_id"]
    issue(db, settings, "2026-01-01")
    (invoice,) = invoices_of(api, policy["id"])
    payment = pay_by_check(api, invoice)
    before = (
        api.get(f"/invoices/{invoice['id']}").json(),
        api.get(f"/payments/{payment['id']}").json(),
    )
    with db.session() as session:
        lapsed = service.lapse(session, settings, int(policy["id"].split("_")[1]), date(2026, 7, 1))
        assert lapsed.cancellation.kind == "lapse"
        assert session.get(Policy, lapsed.cancellation.policy_id).status == "lapsed"
    (refund,) = api.get("/refunds", params={"policyholder_id": holder}).json()["data"]
    assert (refund["amount"], refund["status"], refund["reason"]) == (
        50411,
        "pending",
        "cancellation",
    )
    books_ok(db)

    response = api.post(
        f"/policies/{policy['id']}/reinstatements", json={"effective_date": "2026-07-10"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "active"
    inv_after = api.get(f"/invoices/{invoice['id']}").json()
    pay_after = api.get(f"/payments/{payment['id']}").json()
    same = ("total", "amount_paid", "amount_due", "status")
    assert {k: inv_after[k] for k in same} == {k: before[0][k] for k in same}
    assert inv_after["amount_credited"] == 0
    keys = ("amount_allocated", "amount_refunded", "amount_unapplied", "status", "allocations")
    assert {k: pay_after[k] for k in keys} == {k: before[1][k] for k in keys}
    assert api.get(f"/refunds/{refund['id']}").json()["status"] == "cancelled"
    assert accounts(api)["refunds_payable"] == 0
    assert balances(api, holder) == (0, 0)
    assert statement(api, holder)["closing_balance"] == 0
    books_ok(db)


def test_reinstatement_takes_back_the_final_invoice(api, db, settings):
    """Nothing billed, cancelled: a final invoice. Reinstated: the final invoice is
    credited to nothing (void) and the voided installments are scheduled again."""
    policy = policy_on(api, "monthly", number="FIN-1")
    holder = policy["policyholder_id"]
    body = cancel(api, policy["id"], "2026-03-15").json()
    final = body["final_invoice_id"]
    assert body["balance_due"] == 20000 and final is not None
    response = api.post(
        f"/policies/{policy['id']}/reinstatements", json={"effective_date": "2026-04-01"}
    )
    assert response.status_code == 201, response.text
    assert {row["status"] for row in response.json()["schedule"]} == {"scheduled"}
    taken = api.get(f"/invoices/{final}").json()
    assert (taken["status"], taken["amount_due"], taken["amount_credited"]) == ("void", 0, 20000)
    assert balances(api, holder) == (0, 0)
    assert statement(api, holder)["closing_balance"] == 0
    books_ok(db)


def test_reinstatement_after_a_partial_refund_paid_reopens_what_was_refunded(api, db, settings):
    """A refund already paid out stays paid: reinstated, the invoice asks for it again."""
    policy = policy_on(api, "annual", number="RE-PAID")
    holder = policy["policyholder_id"]
    issue(db, settings, "2026-01-01")
    (invoice,) = invoices_of(api, policy["id"])
    pay_by_check(api, invoice)
    (refund,) = cancel(api, policy["id"], "2026-07-01").json()["refunds"]
    paid = api.post(f"/refunds/{refund['id']}/mark-paid", json={"method": "transfer"})
    assert paid.status_code == 200, paid.text
    response = api.post(
        f"/policies/{policy['id']}/reinstatements", json={"effective_date": "2026-07-05"}
    )
    assert response.status_code == 201, response.text
    again = api.get(f"/invoices/{invoice['id']}").json()
    assert (again["total"], again["amount_paid"], again["amount_due"], again["status"]) == (
        100000, 49589, 50411, "partially_paid",
    )  # fmt: skip
    assert api.get(f"/refunds/{refund['id']}").json()["status"] == "succeeded"
    assert balances(api, holder) == (50411, 0)
    assert statement(api, holder)["closing_balance"] == 50411
    books_ok(db)


def test_premium_cut_with_nothing_left_to_bill_becomes_the_payers_credit(api, db, settings):
    """An annual policy paid in full, its premium cut mid-term: nothing is left to bill, so
    the cut is taken off the paid invoice and becomes the policyholder's credit (it was an
    adjustment installment that was never invoiced)."""
    policy = policy_on(api, "annual", number="CUT-1")
    holder = policy["policyholder_id"]
    issue(db, settings, "2026-01-01")
    (invoice,) = invoices_of(api, policy["id"])
    pay_by_check(api, invoice)
    response = api.post(
        f"/policies/{policy['id']}/endorsements",
        json={"effective_date": "2026-07-01", "lines": [pet_line(annual_premium=80000)],
              "reason": "cheaper cover"},
    )  # fmt: skip
    assert response.status_code == 201, response.text
    delta = response.json()["delta_amount"]
    assert delta == -10082  # 184 of 365 days of −200.00
    adjustment = [r for r in response.json()["schedule"] if r["kind"] == "adjustment"]
    assert [(r["amount"], r["status"]) for r in adjustment] == [(delta, "invoiced")]
    after = api.get(f"/invoices/{invoice['id']}").json()
    assert (after["total"], after["amount_credited"], after["status"]) == (89918, 10082, "paid")
    assert balances(api, holder) == (0, 10082)
    assert statement(api, holder)["closing_balance"] == -10082
    books_ok(db)
    # Cancelled later: the credit stays the policyholder's; the refund is what was paid
    # for the invoice beyond the earned premium.
    body = cancel(api, policy["id"], "2026-10-01").json()
    assert body["refund_due"] == body["credits"][0]["amount"] > 0
    books_ok(db)


def test_premium_cut_on_an_open_invoice_is_credited_off_its_amount_due(api, db, settings):
    policy = policy_on(api, "annual", number="CUT-2")
    issue(db, settings, "2026-01-01")
    (invoice,) = invoices_of(api, policy["id"])
    api.post(
        f"/policies/{policy['id']}/endorsements",
        json={"effective_date": "2026-07-01", "lines": [pet_line(annual_premium=80000)]},
    )
    after = api.get(f"/invoices/{invoice['id']}").json()
    assert (after["amount_due"], after["amount_credited"], after["status"]) == (
        89918, 10082, "open",
    )  # fmt: skip
    books_ok(db)


def test_cancellation_replayed_with_its_idempotency_key_settles_once(api, db, settings):
    policy = policy_on(api, "annual", number="IDEM-1")
    issue(db, settings, "2026-01-01")
    (invoice,) = invoices_of(api, policy["id"])
    pay_by_check(api, invoice)
    first = cancel(api, policy["id"], "2026-07-01", **{"Idempotency-Key": "cancel-idem-1"})
    again = cancel(api, policy["id"], "2026-07-01", **{"Idempotency-Key": "cancel-idem-1"})
    assert first.status_code == again.status_code == 201
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert first.json() == again.json()
    with db.session() as session:
        assert len(session.scalars(select(Refund)).all()) == 1
        assert len(session.scalars(select(InvoiceCredit)).all()) == 1
    assert cancel(api, policy["id"], "2026-07-01").status_code == 409
    books_ok(db)


def test_refunds_list_filters_and_bad_input(api, db, settings):
    assert api.get("/refunds").json() == {"data": [], "has_more": False}
    for params, field in (
        ({"status": "paid"}, "status"),
        ({"policyholder_id": "pol_1"}, "policyholder_id"),
        ({"channel": "cash"}, "channel"),
        ({"starting_after": "pay_1"}, "starting_after"),
    ):
        response = api.get("/refunds", params=params)
        assert response.status_code == 422, (params, response.text)
        assert field in response.json()["errors"]
    assert api.get("/refunds/re_999").status_code == 404
    assert api.get("/refunds/pay_1").status_code == 404
    assert api.post("/refunds/re_999/mark-paid", json={"method": "check"}).status_code == 404
    missing = api.post("/refunds/re_999/mark-paid", json={})
    assert missing.status_code == 422 and "method" in missing.json()["errors"]


def test_a_renewal_already_billed_is_settled_with_the_term_it_follows(api, db, settings):
    """Cancelled in December with the next term's invoice issued and paid: that term is
    cancelled before it starts, so all of its premium is refunded with the December part."""
    policy = policy_on(api, "annual", number="RENEW-1")
    holder = policy["policyholder_id"]
    issue(db, settings, "2026-01-01")
    (current,) = invoices_of(api, policy["id"])
    pay_by_check(api, current)
    run_job(db, settings, "renewals", date(2026, 12, 2))
    current_again, renewal = invoices_of(api, policy["id"])
    assert current_again["id"] == current["id"] and renewal["due_date"] == "2027-01-01"
    second = pay_by_check(api, renewal, on="2026-12-05")
    body = cancel(api, policy["id"], "2026-12-15").json()
    assert body["earned_premium"] == 95342  # 348 of 365 days
    assert body["refund_due"] == 4658 + 100000
    by_payment = {r["payment_id"]: r["amount"] for r in body["refunds"]}
    assert by_payment[second["id"]] == 100000 and sum(by_payment.values()) == 104658
    after = api.get(f"/invoices/{renewal['id']}").json()
    assert (after["status"], after["amount_credited"]) == ("void", 100000)
    assert balances(api, holder) == (0, 0)
    assert statement(api, holder)["closing_balance"] == 0
    books_ok(db)
    response = api.post(
        f"/policies/{policy['id']}/reinstatements", json={"effective_date": "2026-12-20"}
    )
    assert response.status_code == 201, response.text
    back = api.get(f"/invoices/{renewal['id']}").json()
    assert (back["status"], back["amount_paid"], back["amount_credited"]) == ("paid", 100000, 0)
    books_ok(db)


def test_odd_ids_in_paths_are_not_found(api):
    """Schemathesis found '³' (a digit to str.isdigit, not to int) a 500 on a run's path."""
    for path in (
        "/refunds/re_%C2%B3",
        "/refunds/re_99999999999999999999",
        "/reconciliation/runs/%C2%B3",
        "/reconciliation/runs/recon_%C2%B3",
        "/reconciliation/runs/recon_99999999999999999999",
        "/reconciliation/runs/recon_",
    ):
        assert api.get(path).status_code == 404, path


def test_an_invoice_voided_by_hand_after_its_credit_stays_void_on_reinstatement(api, db, settings):
    """Schemathesis' sequence: cancelled, the credited invoice then voided by hand, then
    reinstated (was a 500: the credit reversed onto a void invoice)."""
    policy = policy_on(api, "quarterly", number="QTR-VOID")
    issue(db, settings, "2026-12-31")
    q1, q2, _, _ = invoices_of(api, policy["id"])
    cancel(api, policy["id"], "2026-02-01")
    voided = api.post(f"/invoices/{q1['id']}/void", json={"reason": "written off the books"})
    assert voided.status_code == 200, voided.text
    response = api.post(
        f"/policies/{policy['id']}/reinstatements", json={"effective_date": "2026-02-10"}
    )
    assert response.status_code == 201, response.text
    assert api.get(f"/invoices/{q1['id']}").json()["status"] == "void"
    assert api.get(f"/invoices/{q2['id']}").json()["status"] == "open"
    books_ok(db)


def test_the_payers_credit_settles_the_final_invoice_after_the_settlement(api, db, settings):
    """January paid by a check 20.00 larger than its invoice (20.00 of credit on the
    account), cancelled short rate on 2026-02-15 with February not billed: the final invoice
    of earned premium is issued after the settlement's batch is written, and the credit
    applied at issue (through a batch of its own) takes 20.00 off it."""
    policy = policy_on(api, "monthly", number="CREDIT-FINAL", premium=120000)
    issue(db, settings, "2026-01-01")
    january = invoices_of(api, policy["id"])[0]
    payment = api.post(
        "/payments",
        json={"amount": january["amount_due"] + 2000, "currency": "USD", "method": "check",
              "received_on": "2026-01-05", "policyholder_id": january["policyholder_id"]},
    ).json()  # fmt: skip
    allocated = api.post(
        f"/payments/{payment['id']}/allocations",
        json={"allocations": [{"invoice_id": january["id"], "amount": january["amount_due"]}]},
    )
    assert allocated.status_code == 201, allocated.text
    assert balances(api, january["policyholder_id"]) == (0, 2000)
    response = cancel(api, policy["id"], "2026-02-15", "short_rate")
    assert response.status_code == 201, response.text
    body = response.json()
    final = api.get(f"/invoices/{body['final_invoice_id']}").json()
    assert final["total"] == body["earned_premium"] - january["total"] > 2000
    assert final["amount_paid"] == 2000
    assert final["amount_due"] == final["total"] - 2000
    assert balances(api, january["policyholder_id"]) == (final["amount_due"], 0)
    assert api.get(f"/payments/{payment['id']}").json()["amount_unapplied"] == 0
    books_ok(db)
