"""journal balance check once per entry: set-based posting writes entries of many legs

The deferred per-row constraint trigger of 0003 summed the whole entry for each of its
lines: O(lines²) for a batch entry. It now remembers (per transaction) the entry it last
found balanced and the highest line id that check saw, and skips that entry's later events
for lines the check already covered. A line added afterwards has a higher id: re-checked.
Its queries always use the entry index (`SET enable_seqscan = off` on the function): the
plan PL/pgSQL caches comes from the table's statistics, and a bulk import that grows the
table by a million lines in one transaction would otherwise scan them all for each entry.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

ONCE_PER_ENTRY = """
CREATE OR REPLACE FUNCTION journal_entry_balances() RETURNS trigger LANGUAGE plpgsql
SET enable_seqscan = off AS $$
DECLARE
    leg record;
    seen text := current_setting('premium_billing.balanced_entry', true);
    top bigint := 0;
BEGIN
    IF seen IS NOT NULL AND seen <> '' AND split_part(seen, ':', 1) = NEW.entry_id::text
       AND NEW.id <= split_part(seen, ':', 2)::bigint THEN
        RETURN NULL;
    END IF;
    -- One pass over the entry's lines (by the entry index; a bare max(id) would walk the
    -- primary key backwards through every later line).
    FOR leg IN SELECT currency, SUM(amount) AS total, max(id) AS last_id FROM journal_lines
               WHERE entry_id = NEW.entry_id GROUP BY currency LOOP
        IF leg.total <> 0 THEN
            RAISE EXCEPTION 'journal entry % does not balance in %: %',
                NEW.entry_id, leg.currency, leg.total
                USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_lines_balance';
        END IF;
        top := greatest(top, leg.last_id);
    END LOOP;
    PERFORM set_config('premium_billing.balanced_entry', NEW.entry_id || ':' || top, true);
    RETURN NULL;
END $$
"""

EVERY_LINE = """
CREATE OR REPLACE FUNCTION journal_entry_balances() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    off record;
BEGIN
    SELECT currency, SUM(amount) AS total INTO off FROM journal_lines
    WHERE entry_id = NEW.entry_id GROUP BY currency HAVING SUM(amount) <> 0 LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'journal entry % does not balance in %: %',
            NEW.entry_id, off.currency, off.total
            USING ERRCODE = 'check_violation', CONSTRAINT = 'journal_lines_balance';
    END IF;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(ONCE_PER_ENTRY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(EVERY_LINE)
