"""The demo's book: policyholders with cats and dogs, every billing plan, USD and EUR, fees.

Pure and seeded: the same size and seed give the same book (a second `make run` finds the
first policy and loads nothing). Each holder also gets how they pay (`Payer`): the channel
(a bank transfer in the day's bank file, or a check keyed by hand) and their habits (on
time, late, or a non-payer), which the simulation follows.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from premium_billing.demo.names import FIRST, LAST

DOGS = (
    "Labrador Retriever", "French Bulldog", "Golden Retriever", "German Shepherd", "Poodle",
    "Beagle", "Dachshund", "Border Collie", "Boxer", "Cavalier King Charles Spaniel",
    "Shih Tzu", "Mixed breed",
)  # fmt: skip
CATS = (
    "Domestic Shorthair", "Maine Coon", "Siamese", "British Shorthair", "Ragdoll", "Persian",
    "Bengal", "Sphynx", "Norwegian Forest Cat", "Mixed breed",
)  # fmt: skip
PET_NAMES = (
    "Bella", "Luna", "Charlie", "Max", "Milo", "Daisy", "Rocky", "Coco", "Oliver", "Lola",
    "Leo", "Nala", "Teddy", "Simba", "Bailey", "Cleo", "Loki", "Ruby", "Oscar", "Willow",
    "Buster", "Pepper", "Ziggy", "Mochi", "Biscuit", "Juno", "Felix", "Rosie", "Bruno", "Kiki",
)  # fmt: skip
CITIES = {
    "USD": (("Boston", "US"), ("Austin", "US"), ("Denver", "US"), ("Seattle", "US"),
            ("Chicago", "US"), ("Portland", "US")),
    "EUR": (("Berlin", "DE"), ("Munich", "DE"), ("Dublin", "IE"), ("Lyon", "FR"),
            ("Vienna", "AT"), ("Amsterdam", "NL")),
}  # fmt: skip
LOCALES = {"US": "en_US", "DE": "de_DE", "IE": "en_IE", "FR": "fr_FR", "AT": "de_AT", "NL": "nl_NL"}
STREETS = ("Oak St", "Maple Ave", "Elm Rd", "Park Lane", "Mill Road", "Church St", "High St")
# Plans and their share of the book; each plan's fees (minor units) per currency.
PLANS = (("monthly", 50), ("quarterly", 20), ("semiannual", 10), ("annual", 20))
INSTALLMENT_FEE = {"monthly": 200, "quarterly": 300, "semiannual": 300, "annual": 0}
POLICY_FEE = 1500
# The book's policy numbers start here, clear of those the API guide (docs/api.md) creates.
FIRST_NUMBER = 100001
NEVER_PAY = {3: 120, 7: 45}  # holder number: days before today their policy took effect


@dataclass(frozen=True)
class Payer:
    channel: str  # bank (a line in a bank file, noisy) | check (keyed by hand)
    habit: str  # prompt | late | stops (pays the first invoice only) | never
    lag: int  # days after (negative: before) the due date they pay


@dataclass(frozen=True)
class Holder:
    number: int
    data: dict[str, Any]  # the policyholder, as create_policyholder takes it
    policy: dict[str, Any]  # the policy, without its policyholder_id
    payer: Payer
    pets: list[dict[str, Any]] = field(default_factory=list)


def year_start(today: date) -> date:
    """The first day the demo simulates: the first of this year, or of the last one while
    this one is under three months old (a year to date of a few days shows little)."""
    start = date(today.year, 1, 1)
    return start if (today - start).days >= 90 else date(today.year - 1, 1, 1)


def pet_line(rng: random.Random, today: date) -> dict[str, Any]:
    species = "dog" if rng.random() < 0.6 else "cat"
    breed = rng.choice(DOGS if species == "dog" else CATS)
    name = rng.choice(PET_NAMES)
    born = today - timedelta(days=rng.randrange(120, 14 * 365))
    low, high = (30000, 90000) if species == "dog" else (18000, 50000)
    age_loading = 1 + (today - born).days / 365 / 20
    premium = int(rng.randrange(low, high) * age_loading) // 100 * 100
    return {
        "description": f"{name} ({breed})",
        "annual_premium": premium,
        "pet": {"name": name, "species": species, "breed": breed, "date_of_birth": born},
    }


def build(size: int, today: date, seed: int = 2026) -> list[Holder]:
    """`size` policyholders, one pet policy each (some with two pets), effective between
    `year_start` and a month ago: the year to date is theirs."""
    rng = random.Random(seed)
    start = year_start(today)
    span = max(1, (today - timedelta(days=30) - start).days)
    plans = [p for p, w in PLANS for _ in range(w)]
    holders = []
    for n in range(1, size + 1):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        currency = "EUR" if rng.random() < 0.25 else "USD"
        city, country = rng.choice(CITIES[currency])
        # Every plan in every currency, whatever the size: the first eight cycle through them.
        plan = PLANS[(n - 1) % 4][0] if n <= 8 else rng.choice(plans)
        if n <= 8:
            currency = "USD" if n <= 4 else "EUR"
        pets = [pet_line(rng, today) for _ in range(2 if rng.random() < 0.15 else 1)]
        habit_draw = rng.random()
        habit = "stops" if habit_draw < 0.04 else "late" if habit_draw < 0.22 else "prompt"
        lag = rng.randrange(12, 45) if habit == "late" else rng.randrange(-6, 3)
        channel = "bank" if rng.random() < 0.7 else "check"
        effective = start + timedelta(days=rng.randrange(span))
        if n <= 8:
            # Whatever the size, the book has what the demo promises: the first eight pay on
            # time, but for two who never pay (one lapses long ago, one lately: reinstated).
            habit = "never" if n in NEVER_PAY else "prompt"
            if n in NEVER_PAY:
                effective = max(start, today - timedelta(days=NEVER_PAY[n]))
        holders.append(
            Holder(
                number=n,
                data={
                    "name": f"{first} {last}",
                    "email": f"{first}.{last}.{n}@example.com".lower(),
                    "phone": f"+1 617 555 {n % 10000:04d}",
                    "locale": LOCALES[country],  # the emails' amounts and dates
                    "address": {
                        "line1": f"{rng.randrange(1, 200)} {rng.choice(STREETS)}",
                        "city": city,
                        "country": country,
                    },
                },
                policy={
                    "policy_number": f"PET-{FIRST_NUMBER + n - 1}",
                    "product": "pet",
                    "currency": currency,
                    "effective_date": effective,
                    "term_months": 12,
                    "billing_plan": plan,
                    "lines": pets,
                    "fees": {
                        "policy_fee": POLICY_FEE if plan == "annual" else 0,
                        "installment_fee": INSTALLMENT_FEE[plan],
                    },
                    "autopay": False,
                    "auto_renew": rng.random() < 0.85,
                },
                payer=Payer(channel, habit, lag),
                pets=pets,
            )
        )
    return holders
