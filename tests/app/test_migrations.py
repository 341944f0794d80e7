"""Alembic migrations and the models describe the same schema."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask

from app.db import Base, bound_database


def test_migrations_match_the_models(app: Flask) -> None:
    with bound_database(app).engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_tables_are_utf8mb4_on_mysql(app: Flask) -> None:
    engine = bound_database(app).engine
    if engine.dialect.name not in {"mysql", "mariadb"}:
        return
    with engine.connect() as connection:
        collations = connection.exec_driver_sql(
            "SELECT table_name, table_collation FROM information_schema.tables"
            " WHERE table_schema = DATABASE()"
        ).all()

    assert collations
    assert all(collation.startswith("utf8mb4") for _, collation in collations), collations
