"""The collections job's batch on PostgreSQL as one statement: what `assess.assess_policies`
does with the pure rules in Python, done by the server (at a million policies the rules per
policy in Python cost several times the writes themselves).

The plans come in as `VALUES` lists made from `collections.rules` (each plan's step days,
the days on which something changes, grace start and end, threshold), so the days are the
rules' own; the state is a `CASE` on the days overdue in the same order as `rules.assess`.
The integration tests run the job on both backends (SQLite takes the Python path) and
expect the same steps on the same days. The statement returns only the ids it wrote per
kind: the events carry them as `Written` sequences, read back when a handler reads them, and
the steps' notices are written from their rows by one INSERT … SELECT (`source`, with the
facts by `step_fact_sql`, the SQL twin of `assess.step_fact`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import BigInteger, Date, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from premium_billing.collections import rules
from premium_billing.collections.assess import DEFERRED, Assessed, announce, horizon, step_fact
from premium_billing.config import Settings
from premium_billing.invoicing.rules import PAYABLE_STATUSES


def _values(plans: Mapping[str, rules.Plan]) -> dict[str, str]:
    """The plans as SQL VALUES lists (products and steps are from fixed sets, days ints):
    per product, its grace and threshold; its steps' days; and for every days-overdue from
    the day before its first step to its lapse, what the rules say a run has then seen
    (`stepped_through`) and the next day something happens (`next_change`), so the
    statement reads them by a join instead of computing them."""
    plan_rows, step_rows, day_rows = [], [], []
    for product, plan in sorted(plans.items()):
        assert product in rules.PRODUCTS
        plan_rows.append(
            f"('{product}', {int(plan.grace_start_days)}, {int(plan.grace_days)}, "
            f"{int(plan.threshold)}, {_first_day(plan)})"
        )
        timeline = plan.timeline()
        for step, day in timeline:
            assert step in rules.STEPS
            notice = "true" if step in rules.NOTICES else "false"
            step_rows.append(f"('{product}', '{step}', {int(day)}, {notice})")
        for day in range(_first_day(plan) - 1, plan.grace_days + 1):
            seen = max((d for _s, d in timeline if d <= day), default=None)
            later = plan.next_change(day)
            day_rows.append(
                f"('{product}', {day}, {'NULL' if seen is None else seen}, "
                f"{'NULL' if later is None else later})"
            )
    return {
        "plans": ", ".join(plan_rows),
        "steps": ", ".join(step_rows),
        "days": ", ".join(day_rows),
    }


def _first_day(plan: rules.Plan) -> int:
    return min(0, *(d for _s, d in plan.timeline()))


_SQL = """
WITH plan(product, grace_start, grace_days, threshold, first_day) AS (VALUES {plans}),
plan_steps(product, step, day, notice) AS (VALUES {steps}),
plan_days(product, day, through, next_day) AS (VALUES {days}),
inv AS (
    SELECT i.policy_id, i.id, i.due_date, i.amount_due, i.installment_id,
           min(i.due_date) OVER (PARTITION BY i.policy_id) AS anchor
    FROM invoices i
    WHERE i.policy_id BETWEEN :first AND :last AND i.policy_id + 0 = ANY(:ids)
      AND i.status IN ({payable})
      AND i.due_date <= :horizon AND i.amount_due > 0
),
owed AS (
    SELECT policy_id, min(anchor) AS anchor,
           sum(amount_due) FILTER (WHERE due_date <= greatest(:as_of, anchor)) AS chased,
           coalesce(sum(amount_due) FILTER (WHERE due_date < :as_of), 0) AS overdue,
           (array_agg(installment_id ORDER BY due_date, id))[1] AS installment_id
    FROM inv GROUP BY policy_id
),
heads AS (
    SELECT p.id AS policy_id, p.product, p.currency, p.status AS policy_status,
           d.policy_id IS NOT NULL AS has_row, d.state AS old_state,
           d.anchor_due_date AS old_anchor, d.through AS old_through,
           d.amount_overdue AS old_overdue, d.next_on AS old_next_on,
           o.anchor, coalesce(o.chased, 0) AS chased, coalesce(o.overdue, 0) AS overdue,
           o.installment_id, :as_of - o.anchor AS days,
           pl.grace_start, pl.grace_days, pl.first_day,
           (o.anchor IS NOT NULL AND o.chased >= pl.threshold) AS chasing
    FROM policies p
    JOIN plan pl ON pl.product = p.product
    LEFT JOIN delinquencies d ON d.policy_id = p.id AND d.policy_id = ANY(:ids)
    LEFT JOIN owed o ON o.policy_id = p.id
    WHERE p.id BETWEEN :first AND :last AND p.id + 0 = ANY(:ids)
      AND p.status IN ('active', 'past_due', 'in_grace')
),
calc AS (
    SELECT h.*,
           CASE WHEN NOT h.chasing OR h.days <= 0 THEN
                    CASE WHEN h.old_state = 'reinstated' THEN 'reinstated' ELSE 'active' END
                WHEN h.days < h.grace_start THEN 'past_due'
                ELSE 'in_grace'  -- the lapse is settled after the batch: in grace until then
           END AS state,
           CASE WHEN h.chasing THEN pd.through END AS through,
           CASE WHEN h.chasing THEN h.anchor + pd.next_day END AS next_on,
           CASE WHEN h.old_anchor = h.anchor THEN h.old_through END AS seen
    FROM heads h
    LEFT JOIN plan_days pd ON pd.product = h.product
        AND pd.day = least(greatest(h.days, h.first_day - 1), h.grace_days)
),
due_steps AS (
    SELECT c.policy_id, c.installment_id, c.anchor, s.step, s.day, c.overdue, c.currency
    FROM calc c
    JOIN plan_steps s ON s.product = c.product
    WHERE c.chasing AND s.day <= c.days AND (c.seen IS NULL OR s.day > c.seen)
      AND NOT (s.notice AND c.days - s.day > :stale)
),
todo AS (
    SELECT c.* FROM calc c
    WHERE CASE WHEN c.has_row THEN
              (c.state, c.anchor, c.overdue, c.through, c.next_on) IS DISTINCT FROM
              (c.old_state, c.old_anchor, c.old_overdue, c.old_through, c.old_next_on)
          ELSE c.state <> 'active' OR c.policy_id IN (SELECT policy_id FROM due_steps) END
),
ins AS (
    INSERT INTO delinquencies (policy_id, state, since, anchor_due_date, amount_overdue,
        currency, through, evaluated_on, next_on, updated_at)
    SELECT t.policy_id, t.state, :as_of, t.anchor, t.overdue, t.currency,
           CASE WHEN t.anchor IS NOT NULL THEN t.through END, :as_of, t.next_on, now()
    FROM todo t WHERE NOT t.has_row
    ON CONFLICT (policy_id) DO NOTHING
    RETURNING policy_id, 'active'::text AS old_state, state
),
upd AS (
    UPDATE delinquencies d
    SET state = t.state,
        since = CASE WHEN t.state <> t.old_state THEN :as_of ELSE d.since END,
        anchor_due_date = t.anchor, amount_overdue = t.overdue,
        through = CASE WHEN t.anchor IS NOT NULL THEN t.through END,
        evaluated_on = :as_of, next_on = t.next_on, updated_at = now()
    FROM todo t
    WHERE t.has_row AND d.policy_id = t.policy_id AND d.policy_id = ANY(:ids)
      AND d.state = t.old_state
      AND d.through IS NOT DISTINCT FROM t.old_through
    RETURNING d.policy_id, t.old_state::text, d.state
),
won AS (SELECT * FROM ins UNION ALL SELECT * FROM upd),
moved AS (SELECT * FROM won WHERE state <> old_state),
pol AS (
    UPDATE policies p
    SET status = CASE m.state WHEN 'reinstated' THEN 'active' ELSE m.state END,
        updated_at = now()
    FROM moved m
    WHERE p.id = m.policy_id AND p.id BETWEEN :first AND :last AND p.id + 0 = ANY(:ids)
      AND p.status <> CASE m.state WHEN 'reinstated' THEN 'active' ELSE m.state END
    RETURNING p.id
),
stp AS (
    INSERT INTO collection_steps (policy_id, installment_id, anchor_due_date, step,
        days_after_due, taken_on, amount_overdue, currency, status, job_run_id, created_at)
    SELECT ds.policy_id, ds.installment_id, ds.anchor, ds.step, ds.day, :as_of, ds.overdue,
           ds.currency, CASE WHEN ds.step IN ({deferred}) THEN 'pending' ELSE 'taken' END,
           :run_id, now()
    FROM due_steps ds JOIN won w ON w.policy_id = ds.policy_id
    ON CONFLICT DO NOTHING
    RETURNING id, policy_id, installment_id, anchor_due_date, step, days_after_due, taken_on,
              amount_overdue, currency, status
)
SELECT
    (SELECT json_object_agg(move, ids)::text FROM (
        SELECT old_state || '->' || state AS move, json_agg(policy_id) AS ids
        FROM moved GROUP BY 1) g) AS moves,
    (SELECT json_object_agg(status || ':' || step, ids)::text FROM (
        SELECT status, step, json_agg(id) AS ids FROM stp GROUP BY 1, 2) g) AS taken,
    (SELECT count(*) FROM pol) AS statuses
"""


def assess_batch(
    session: Session,
    settings: Settings,
    plans: Mapping[str, rules.Plan],
    policy_ids: Sequence[int],
    as_of: date,
    job_run_id: int | None,
) -> Assessed:
    """The job's batch (take_steps) on PostgreSQL: see the module doc."""
    outcome = Assessed()
    sql = _SQL.format(
        payable=", ".join(f"'{s}'" for s in PAYABLE_STATUSES),
        deferred=", ".join(f"'{s}'" for s in DEFERRED),
        **_values(plans),
    )
    stmt = text(sql).bindparams(
        bindparam("ids", type_=ARRAY(BigInteger)),
        bindparam("as_of", type_=Date()),
        bindparam("horizon", type_=Date()),
        bindparam("run_id", type_=BigInteger()),
    )
    # Never prepared, so planned for its ids each time (a generic plan, made once, would not
    # see the tables grow by a batch each statement); not `custom_plans`, which would also
    # re-plan each row's foreign-key checks (measured: they then cost 5× as much).
    # And by the indexes: the job grows delinquencies and collection_steps by a batch each
    # statement, faster than their statistics follow (analysed empty, a table of 500,000
    # rows still looks small enough to scan in full for each batch). For the rest of the
    # batch's transaction (its notices read the steps back by id as well).
    session.execute(text("SET LOCAL enable_seqscan = off"))
    driver = session.connection().connection.driver_connection
    threshold = driver.prepare_threshold  # type: ignore[union-attr]
    driver.prepare_threshold = None  # type: ignore[union-attr]
    try:
        row = session.execute(
            stmt,
            {
                "ids": list(policy_ids),
                # Read as the range of the ids (one scan of each index, the ids a filter:
                # `+ 0`), not a descent of the index per id.
                "first": min(policy_ids),
                "last": max(policy_ids),
                "as_of": as_of,
                "horizon": horizon(settings, as_of),
                "stale": settings.collections_stale_days,
                "run_id": job_run_id,
            },
        ).one()
    finally:
        driver.prepare_threshold = threshold  # type: ignore[union-attr]
    moves = {move: sorted(ids) for move, ids in json.loads(row.moves or "{}").items()}
    taken: dict[str, dict[str, list[int]]] = {"taken": {}, "pending": {}}
    for key, ids in json.loads(row.taken or "{}").items():
        status, _, step = key.partition(":")
        taken[status][step] = sorted(ids)
    grace = {product: plan.grace_days for product, plan in plans.items()}
    outcome.transitions = Written(moves, as_of, lambda: _transitions(session, moves, as_of))
    outcome.steps, outcome.deferred = (
        Written(
            taken[status],
            as_of,
            lambda ids=taken[status]: _steps(session, grace, ids),
            source=_notices_source(grace, taken[status]) if status == "taken" else None,
        )
        for status in ("taken", "pending")
    )
    announce(session, settings, outcome.transitions, outcome.steps)
    return outcome


class Written(Sequence[dict[str, Any]]):
    """What a batch statement wrote, as the event names it (a transition, a step fact),
    read back only when a handler reads it: a batch writes thousands that no handler may
    need (with no webhook endpoint nothing reads the transitions; the notices are written
    by INSERT … SELECT from `source`). `groups`: the ids per kind, which the statement
    returns (the audit row's, the job's counts)."""

    def __init__(
        self,
        groups: dict[str, list[int]],
        on: date,
        load: Callable[[], list[dict[str, Any]]],
        source: Callable[[Sequence[str]], tuple[str, dict[str, Any]]] | None = None,
    ) -> None:
        self.groups = groups
        self.on = on
        self.source = source
        self._load = load
        self._rows: list[dict[str, Any]] | None = None

    def _read(self) -> list[dict[str, Any]]:
        if self._rows is None:
            self._rows = self._load() if self.groups else []
        return self._rows

    def __len__(self) -> int:
        return sum(len(ids) for ids in self.groups.values())

    def __getitem__(self, index: Any) -> Any:
        return self._read()[index]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._read())


def _transitions(
    session: Session, moves: Mapping[str, list[int]], on: date
) -> list[dict[str, Any]]:
    """The transitions of `moves` ("from->to": policy ids) as DELINQUENCY_CHANGED names
    them, from the rows this transaction wrote."""
    states = {}
    for move, ids in moves.items():
        before, _, after = move.partition("->")
        states.update(dict.fromkeys(ids, (before, after)))
    rows = session.execute(
        text(
            "SELECT policy_id, anchor_due_date, amount_overdue, currency FROM delinquencies "
            "WHERE policy_id = ANY(CAST(:ids AS bigint[])) ORDER BY policy_id"
        ),
        {"ids": sorted(states)},
    )
    return [
        {
            "policy_id": policy_id,
            "from_state": states[policy_id][0],
            "to_state": states[policy_id][1],
            "on": on,
            "oldest_unpaid_due_date": anchor,
            "amount_overdue": int(overdue),
            "currency": currency,
        }
        for policy_id, anchor, overdue, currency in rows
    ]


def _steps(
    session: Session, grace: Mapping[str, int], groups: Mapping[str, list[int]]
) -> list[dict[str, Any]]:
    """The steps `groups` names (step: ids) as COLLECTION_STEPS_TAKEN names them
    (`assess.step_fact`), from their rows."""
    ids = sorted(i for kind in groups.values() for i in kind)
    rows = session.execute(
        text(
            "SELECT s.id, s.policy_id, s.installment_id, s.step, s.taken_on, s.anchor_due_date, "
            "s.amount_overdue, s.currency, s.status, s.days_after_due, "
            "s.anchor_due_date + g.grace_days AS grace_end "
            f"FROM collection_steps s JOIN policies p ON p.id = s.policy_id {_graces(grace)} "
            "WHERE s.id = ANY(CAST(:ids AS bigint[])) AND s.id BETWEEN :first AND :last "
            "ORDER BY s.id"
        ),
        {"ids": ids, "first": ids[0], "last": ids[-1]},
    ).mappings()
    facts = []
    for row in rows:
        step = dict(row)
        grace_end = step.pop("grace_end")
        facts.append(step_fact(step, grace_end))
    return facts


def _graces(grace: Mapping[str, int]) -> str:
    """A join of `policies p` to its plan's grace days (`g.grace_days`)."""
    assert all(p in rules.PRODUCTS for p in grace)
    graces = ", ".join(f"('{p}', {int(d)})" for p, d in sorted(grace.items()))
    return f"JOIN (VALUES {graces}) AS g(product, grace_days) ON g.product = p.product"


def _notices_source(
    grace: Mapping[str, int], taken: Mapping[str, list[int]]
) -> Callable[[Sequence[str]], tuple[str, dict[str, Any]]]:
    """The taken steps of the given kinds (step_id, policy_id, policyholder_id, step, facts:
    `assess.step_fact` of the row, by `step_fact_sql`) as a SELECT, for an INSERT … SELECT of
    their notices, and its parameters."""

    def source(kinds: Sequence[str]) -> tuple[str, dict[str, Any]]:
        sql = (
            "SELECT s.id AS step_id, s.policy_id, p.policyholder_id, s.step, "
            f"{step_fact_sql('s', 's.anchor_due_date + g.grace_days')} AS facts "
            # A probe of each step and of its policy (OFFSET 0: not flattened into a join
            # that the planner, with the statistics of a table that grows by a batch each
            # statement, makes a scan from the first row).
            "FROM unnest(CAST(:step_ids AS bigint[])) AS x(id) "
            "CROSS JOIN LATERAL (SELECT * FROM collection_steps WHERE id = x.id OFFSET 0) AS s "
            "CROSS JOIN LATERAL (SELECT policyholder_id, product FROM policies "
            "WHERE id = s.policy_id OFFSET 0) AS p "
            f"{_graces(grace)}"
        )
        return sql, {"step_ids": sorted(i for k in kinds for i in taken.get(k, ()))}

    return source


def step_fact_sql(step: str, grace_ends_on: str) -> str:
    """`assess.step_fact` in SQL (PostgreSQL): the JSON of the collection_steps row `step`
    with `grace_ends_on` (an SQL date expression). A test holds the two equal."""
    return (
        "CAST(jsonb_build_object("
        f"'step_id', {step}.id, 'policy_id', {step}.policy_id, "
        f"'installment_id', {step}.installment_id, 'step', {step}.step, "
        f"'on', {step}.taken_on, 'oldest_unpaid_due_date', {step}.anchor_due_date, "
        f"'amount_overdue', {step}.amount_overdue, 'currency', {step}.currency, "
        f"'grace_ends_on', {grace_ends_on}, 'lapse_on', {grace_ends_on}, "
        f"'status', {step}.status) || CASE WHEN {step}.step = 'reminder' "
        f"THEN jsonb_build_object('offset', {step}.days_after_due) ELSE '{{}}' END AS json)"
    )
