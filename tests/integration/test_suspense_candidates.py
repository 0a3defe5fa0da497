"""Suspense that helps a person (issue 12, item 5), over real HTTP on every backend: a
name-only line of a common name and a typo line wait in suspense with up to five ranked
candidates in their currency, each with its score, reason and what a manual match of it
would allocate, so that the match is one step; a payment held for a person (its match
undone) has its candidates ranked again by every run, never posted."""

from __future__ import annotations

from tests.integration.ledger_helpers import cli
from tests.integration.recon_helpers import csv_file, holder_with_invoices, upload


def _run(api, as_of="2026-02-10"):
    response = api.post("/reconciliation/runs", json={"as_of": as_of})
    assert response.status_code == 201, response.text
    return response.json()


def _queue(api):
    return {
        r["payment"]["external_id"]: r for r in api.get("/reconciliation/suspense").json()["data"]
    }


def _books_hold(database_url):
    for command in (("ledger", "check"), ("audit", "verify")):
        result = cli(database_url, *command)
        assert result.returncode == 0, (command, result.stdout, result.stderr)


def test_name_only_and_typo_lines_list_ranked_candidates_and_one_step_matches(
    api, db, database_url
):
    # Three John Smiths, two of them due 50.01: no name match can post.
    smiths = [holder_with_invoices(api, db, "John Smith", [d])[1][0] for d in (5000, 5001, 5001)]
    _, [(ann_inv, ann_num)] = holder_with_invoices(api, db, "Ann Lee", [7250])
    _, [(raj_inv, _)] = holder_with_invoices(api, db, "Raj Patel", [7250])
    _, [(eur_inv, _)] = holder_with_invoices(api, db, "Eva Schmidt", [5001], currency="EUR")
    typo = ann_num[:-2] + ann_num[-1] + ann_num[-2]  # the last two digits transposed
    upload(
        api,
        csv_file(
            "2026-02-03,50.01,USD,J SMITH,premium,B-1",
            f"2026-02-03,72.50,USD,A N Other,{typo},B-2",  # a typo, and someone else paid
            "2026-02-03,12.34,USD,Zed Unknown,thanks,B-3",  # nothing but the amount
        ),
    )
    run = _run(api)
    assert (run["matched"], run["suspense"]) == (0, 3)
    queue = _queue(api)

    name_only = queue["B-1"]["candidates"]
    assert 3 <= len(name_only) <= 5
    first = name_only[0]
    assert first["invoice_id"] == smiths[1][0]  # due exactly 50.01 (a tie: the lower number first)
    assert name_only[1]["invoice_id"] == smiths[2][0]
    assert first["score"] == name_only[1]["score"] > name_only[2]["score"]
    assert first["rule"] == "payer_name" and first["amount_due"] == 5001
    assert "payer name like the policyholder's" in first["reason"]
    assert "amount equal to what is due" in first["reason"]
    assert first["suggested_amount"] == 5001 and first["due_date"] == "2026-02-01"
    assert {c["invoice_id"] for c in name_only[:3]} == {inv for inv, _ in smiths}
    assert eur_inv not in {c["invoice_id"] for c in name_only}  # same currency only
    assert [c["score"] for c in name_only] == sorted((c["score"] for c in name_only),
                                                      reverse=True)  # fmt: skip

    typo_line = queue["B-2"]["candidates"]
    assert typo_line[0]["invoice_id"] == ann_inv
    assert typo_line[0]["rule"] == "fuzzy_reference"
    assert "one edit from its number" in typo_line[0]["reason"]
    assert "(transposition)" in typo_line[0]["reason"]
    assert raj_inv in {c["invoice_id"] for c in typo_line}  # the same amount, nothing else

    amount_only = queue["B-3"]["candidates"]
    assert amount_only and all(c["rule"] == "amount" for c in amount_only)

    # One step: the first candidate with its suggested amount.
    payment = queue["B-1"]["payment"]
    match = api.post(
        f"/payments/{payment['id']}/allocations",
        json={"allocations": [{"invoice_id": first["invoice_id"],
                               "amount": first["suggested_amount"]}]},
    )  # fmt: skip
    assert match.status_code == 201, match.text
    assert match.json()["status"] == "applied"
    assert "B-1" not in _queue(api)
    _books_hold(database_url)


def test_a_held_payment_has_its_candidates_ranked_again_by_every_run(api, db, database_url):
    _, [(inv1, num1), (inv2, _)] = holder_with_invoices(api, db, "Ann Lee", [6000, 6000])
    upload(api, csv_file(f"2026-02-03,60.00,USD,Ann Lee,{num1},B-1"))
    assert _run(api)["matched"] == 1
    payment = next(p for p in api.get("/payments").json()["data"] if p["external_id"] == "B-1")
    assert api.delete(f"/payments/{payment['id']}/allocations").status_code == 200
    held = _queue(api)["B-1"]
    assert held["held"] is True and held["candidates"] == []  # nothing ranked it yet

    run = _run(api)
    assert (run["examined"], run["matched"], run["stats"]["held"]) == (0, 0, 1)
    held = _queue(api)["B-1"]
    assert held["held"] is True and held["reason"].startswith("match undone by hand")
    ranked = held["candidates"]
    assert ranked[0]["invoice_id"] == inv1 and ranked[0]["rule"] == "reference"
    assert ranked[0]["reason"].startswith("quotes its number")
    assert inv2 in {c["invoice_id"] for c in ranked}
    assert api.get(f"/invoices/{inv1}").json()["status"] == "open"  # never posted
    _books_hold(database_url)
