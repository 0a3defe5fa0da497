"""Reading GET /metrics in tests: a scrape over real HTTP, parsed by prometheus_client's own
parser, and the samples looked up by name and labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from prometheus_client.parser import text_string_to_metric_families

from premium_billing.audit.trail import verify
from premium_billing.reports.check import check


@dataclass(frozen=True)
class Scrape:
    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float:
        """The sample `name` with exactly these labels (0 when absent)."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def total(self, name: str, **labels: str) -> float:
        """The sum of the samples `name` whose labels include these."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.samples.items() if n == name and wanted <= ls)

    def has(self, name: str, **labels: str) -> bool:
        return (name, frozenset(labels.items())) in self.samples

    def since(self, before: Scrape, name: str, **labels: str) -> float:
        """How much the sample grew since `before`."""
        return self.value(name, **labels) - before.value(name, **labels)


def parse(text: str) -> Scrape:
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return Scrape(text, samples)


def scrape(base_url: str, token: str, **headers: str) -> Scrape:
    """GET /metrics with `Authorization: Bearer <token>` (METRICS_TOKEN or an admin key)."""
    response = requests.get(
        base_url + "/metrics", headers={"Authorization": f"Bearer {token}", **headers}, timeout=30
    )
    assert response.status_code == 200, response.text
    return parse(response.text)


def books_balance(db: Any) -> None:
    """`ledger check` and `audit verify` find nothing wrong."""
    with db.session() as session:
        assert check(session) == []
        assert verify(session).problem is None
