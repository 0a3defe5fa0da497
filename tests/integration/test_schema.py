"""The models and the migrations describe the same schema, on each backend."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from premium_billing.db.engine import normalize_url
from premium_billing.models import metadata


def test_models_and_migrations_agree(database_url):
    engine = create_engine(normalize_url(database_url))
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, metadata)
    engine.dispose()
    assert diff == [], diff


def test_unique_and_check_constraints_exist(database_url):
    engine = create_engine(normalize_url(database_url))
    inspector = inspect(engine)
    policy_uniques = {
        tuple(u["column_names"]) for u in inspector.get_unique_constraints("policies")
    }
    assert ("policy_number",) in policy_uniques
    installment_uniques = {
        tuple(u["column_names"]) for u in inspector.get_unique_constraints("installments")
    }
    assert ("term_id", "number") in installment_uniques
    key_uniques = {tuple(u["column_names"]) for u in inspector.get_unique_constraints("api_keys")}
    assert ("key_hash",) in key_uniques
    engine.dispose()
