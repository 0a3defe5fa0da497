"""Policies over real HTTP: creation, schedule, endorsement, cancellation, reinstatement,
renewal premium, listing. Worked examples of the foundation issue."""

from __future__ import annotations

from tests.factories import create_policy, create_policyholder, pet_line


def test_create_policy_returns_schedule_keeping_the_anchor_day(api):
    policy = create_policy(api)
    assert policy["id"].startswith("pol_")
    assert policy["status"] == "active"
    assert policy["annual_premium"] == 48000
    assert policy["expiration_date"] == "2027-01-31"
    due = [row["due_date"] for row in policy["schedule"]]
    assert due[:5] == ["2026-01-31", "2026-02-28", "2026-03-31", "2026-04-30", "2026-05-31"]
    assert len(due) == 12
    assert all(row["fee"] == 200 for row in policy["schedule"])
    assert sum(row["amount"] for row in policy["schedule"]) == 48000


def test_one_thousand_monthly_first_installment_carries_the_remainder(api):
    policy = create_policy(
        api, lines=[pet_line(annual_premium=100000)], fees={"policy_fee": 0, "installment_fee": 0}
    )
    schedule = api.get(f"/policies/{policy['id']}/schedule").json()["data"]
    amounts = [row["amount"] for row in schedule]
    assert amounts == [8337] + [8333] * 11
    assert sum(amounts) == 100000
    assert all(row["status"] == "scheduled" and row["invoice_id"] is None for row in schedule)


def test_policy_fee_goes_on_the_first_installment(api):
    policy = create_policy(
        api, billing_plan="quarterly", fees={"policy_fee": 1500, "installment_fee": 100}
    )
    fees = [row["fee"] for row in policy["schedule"]]
    assert fees == [1600, 100, 100, 100]
    assert [r["due_date"] for r in policy["schedule"]] == [
        "2026-01-31",
        "2026-04-30",
        "2026-07-31",
        "2026-10-31",
    ]


def test_expiration_date_may_be_given_instead_of_term_months(api):
    holder = create_policyholder(api)
    body = {
        "policyholder_id": holder["id"],
        "policy_number": "GEN-1",
        "product": "general",
        "currency": "EUR",
        "effective_date": "2026-03-01",
        "expiration_date": "2026-09-01",
        "billing_plan": "monthly",
        "lines": [{"description": "Cover", "annual_premium": 120000}],
    }
    response = api.post("/policies", json=body)
    assert response.status_code == 201, response.text
    policy = response.json()
    assert policy["term_months"] == 6
    assert sum(r["amount"] for r in policy["schedule"]) == 60000
    assert len(policy["schedule"]) == 6


def test_endorsement_worked_example_delta_spread_over_unbilled(api):
    policy = create_policy(
        api,
        effective_date="2026-01-01",
        billing_plan="monthly",
        lines=[pet_line(annual_premium=100000)],
        fees={"policy_fee": 0, "installment_fee": 0},
    )
    response = api.post(
        f"/policies/{policy['id']}/endorsements",
        json={
            "effective_date": "2026-07-01",
            "lines": [pet_line(annual_premium=120000)],
            "reason": "second pet",
        },
    )
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["days_remaining"] == 184
    assert result["term_days"] == 365
    assert result["delta_amount"] == 10082
    amounts = [row["amount"] for row in result["schedule"]]
    # Spread over the six installments due from July on (remainder on the first of them);
    # January to June keep their amounts, billed or not.
    assert amounts[:6] == [8337] + [8333] * 5
    assert amounts[6:] == [8333 + 1682] + [8333 + 1680] * 5
    assert sum(amounts) == 100000 + 10082
    current = api.get(f"/policies/{policy['id']}").json()
    assert current["annual_premium"] == 120000


def test_endorsement_on_annual_plan_goes_onto_the_unbilled_installment(api):
    policy = create_policy(
        api,
        effective_date="2026-01-01",
        billing_plan="annual",
        lines=[pet_line(annual_premium=100000)],
        fees={"policy_fee": 0, "installment_fee": 0},
    )
    # The annual installment was due in January, before the change: the delta is billed at
    # once as an adjustment due on the endorsement's date.
    result = api.post(
        f"/policies/{policy['id']}/endorsements",
        json={"effective_date": "2026-07-01", "lines": [pet_line(annual_premium=120000)]},
    ).json()
    assert (result["delta_amount"], result["days_remaining"]) == (10082, 184)
    rows = [(r["kind"], r["due_date"], r["amount"]) for r in result["schedule"]]
    assert rows == [("premium", "2026-01-01", 100000), ("adjustment", "2026-07-01", 10082)]


def test_an_endorsement_takes_effect_from_its_date(api):
    # Quarterly 800.00 from 2026-12-01; a pet adding 365.00 a year from 2027-02-15:
    # delta 289.00 (289 of 365 days), spread over the installments due from then on.
    policy = create_policy(
        api,
        effective_date="2026-12-01",
        billing_plan="quarterly",
        lines=[pet_line(annual_premium=80000)],
        fees={"policy_fee": 0, "installment_fee": 0},
    )
    assert [r["amount"] for r in policy["schedule"]] == [20000] * 4
    result = api.post(
        f"/policies/{policy['id']}/endorsements",
        json={
            "effective_date": "2027-02-15",
            "lines": [pet_line(annual_premium=80000), pet_line("Mia", annual_premium=36500)],
        },
    ).json()
    assert (result["delta_amount"], result["days_remaining"]) == (28900, 289)
    assert [r["amount"] for r in result["schedule"]] == [20000, 29634, 29633, 29633]


def test_cancellation_pro_rata_and_short_rate_unpaid(api):
    base = dict(
        effective_date="2026-01-01",
        billing_plan="annual",
        lines=[pet_line(annual_premium=100000)],
        fees={"policy_fee": 0, "installment_fee": 0},
    )
    holder = create_policyholder(api)["id"]
    pro_rata = create_policy(api, holder, policy_number="P-1", **base)
    short = create_policy(api, holder, policy_number="P-2", **base)
    r1 = api.post(
        f"/policies/{pro_rata['id']}/cancellations",
        json={"effective_date": "2026-07-01", "reason": "sold the dog"},
    )
    r2 = api.post(
        f"/policies/{short['id']}/cancellations",
        json={"effective_date": "2026-07-01", "method": "short_rate"},
    )
    assert r1.status_code == 201 and r2.status_code == 201
    assert r1.json()["earned_premium"] == 49589
    assert r1.json()["balance_due"] == 49589 and r1.json()["refund_due"] == 0
    # short rate keeps 10% of the unearned 50411 → 5041
    assert r2.json()["earned_premium"] == 49589 + 5041
    cancelled = api.get(f"/policies/{pro_rata['id']}").json()
    assert cancelled["status"] == "cancelled"
    assert {row["status"] for row in cancelled["schedule"]} == {"void"}


def test_reinstatement_restores_voided_installments_within_window(api):
    policy = create_policy(api, effective_date="2026-01-01")
    api.post(f"/policies/{policy['id']}/cancellations", json={"effective_date": "2026-03-15"})
    late = api.post(
        f"/policies/{policy['id']}/reinstatements", json={"effective_date": "2026-04-30"}
    )
    assert late.status_code == 422
    assert "effective_date" in late.json()["errors"]
    response = api.post(
        f"/policies/{policy['id']}/reinstatements", json={"effective_date": "2026-04-01"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "active"
    assert {row["status"] for row in response.json()["schedule"]} == {"scheduled"}
    again = api.post(
        f"/policies/{policy['id']}/reinstatements", json={"effective_date": "2026-04-01"}
    )
    assert again.status_code == 409
    # and it can be cancelled again after reinstatement
    assert (
        api.post(
            f"/policies/{policy['id']}/cancellations", json={"effective_date": "2026-05-01"}
        ).status_code
        == 201
    )


def test_renewal_premium_is_stored_for_the_next_term(api):
    policy = create_policy(api)
    response = api.put(
        f"/policies/{policy['id']}/renewal",
        json={"lines": [pet_line(annual_premium=52000), pet_line("Tom", 30000)]},
    )
    assert response.status_code == 200, response.text
    assert response.json()["annual_premium"] == 82000
    stored = api.get(f"/policies/{policy['id']}").json()
    assert [line["annual_premium"] for line in stored["renewal_lines"]] == [52000, 30000]
    assert stored["annual_premium"] == 48000


def test_list_filters_and_cursor_pagination(api):
    holder_a = create_policyholder(api)["id"]
    holder_b = create_policyholder(api, email="b@example.com")["id"]
    ids = [create_policy(api, holder_a, policy_number=f"A-{i}")["id"] for i in range(3)]
    create_policy(api, holder_b, policy_number="B-1")
    page1 = api.get("/policies", params={"policyholder_id": holder_a, "limit": 2}).json()
    assert [p["id"] for p in page1["data"]] == ids[:2] and page1["has_more"] is True
    page2 = api.get(
        "/policies", params={"policyholder_id": holder_a, "limit": 2, "starting_after": ids[1]}
    ).json()
    assert [p["id"] for p in page2["data"]] == ids[2:] and page2["has_more"] is False
    by_number = api.get("/policies", params={"policy_number": "B-1"}).json()["data"]
    assert [p["policyholder_id"] for p in by_number] == [holder_b]
    assert api.get("/policies", params={"status": "cancelled"}).json()["data"] == []


def test_policyholder_read_list_patch(api):
    holder = create_policyholder(
        api, address={"line1": "1 Main St", "city": "Boston", "country": "US"}
    )
    assert holder["balance"] == 0 and holder["credit_balance"] == 0
    patched = api.patch(f"/policyholders/{holder['id']}", json={"phone": "+1 555 0199"})
    assert patched.status_code == 200
    assert patched.json()["phone"] == "+1 555 0199"
    assert patched.json()["email"] == "ann@example.com"
    fetched = api.get(f"/policyholders/{holder['id']}").json()
    assert fetched["address"]["city"] == "Boston"
    listed = api.get("/policyholders").json()
    assert [h["id"] for h in listed["data"]] == [holder["id"]]
    assert api.get("/policyholders/ph_999").status_code == 404
    assert api.get("/policyholders/nonsense").status_code == 404
