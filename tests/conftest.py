"""Test harness: a real sandbox process, a migrated database, a fresh app per test.

The database is SQLite unless DATABASE_URL points elsewhere (CI runs the suite a
second time on MariaDB). Tables are emptied after each test, so tests are
independent and the schema is built once, by the real Alembic migrations.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from alembic import command
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app import create_app
from app.cli import alembic_config
from app.config import Config
from app.db import Base, bound_database, normalize_database_url
from app.sandbox import SandboxProcess, start_sandbox_process

CARPARK_TIMEOUT_SECONDS = 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _backend(os.environ.get("DATABASE_URL", "sqlite://")) == "sqlite":
        skip = pytest.mark.skip(reason="needs MySQL/MariaDB: SQLite serialises writers")
        for item in items:
            if "mariadb" in item.keywords:
                item.add_marker(skip)


def _backend(url: str) -> str:
    return make_url(url).get_backend_name()


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxProcess]:
    with start_sandbox_process(env=Config.from_env({}).credential_env()) as process:
        yield process


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture
def config(database_url: str, sandbox: SandboxProcess) -> Config:
    return app_config(database_url, sandbox)


def app_config(database_url: str, sandbox: SandboxProcess) -> Config:
    """The settings of an app under test (for fixtures of a wider scope than `config`)."""
    # An empty environ: a developer's .env must never leak into tests.
    return Config.from_env(
        {},
        TESTING=True,
        DATABASE_URL=database_url,
        WECHAT_API_BASE=sandbox.wechat_url,
        WECOM_API_BASE=sandbox.wecom_url,
        CARPARK_API_BASE=sandbox.carpark_url,
        # Short, so that tests of a car park that never answers stay quick.
        CARPARK_TIMEOUT_SECONDS=CARPARK_TIMEOUT_SECONDS,
    )


# A Redis database of its own, emptied by the tests that use it.
TEST_REDIS_URL = "redis://127.0.0.1:6379/15"


@pytest.fixture
def redis_config(config: Config) -> Config:
    """`config` with Redis, for tests of what Redis adds; skipped where no Redis runs."""
    connection = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        connection.flushdb()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    finally:
        connection.close()
    return config.with_overrides(REDIS_URL=TEST_REDIS_URL)


@pytest.fixture
def app(config: Config, sandbox: SandboxProcess) -> Iterator[Flask]:
    app = create_app(config)
    yield app
    clean_up_after(app, sandbox)


def clean_up_after(app: Flask, sandbox: SandboxProcess) -> None:
    """Leave the database and the sandbox as the next test expects them: empty."""
    _empty_all_tables(app)
    bound_database(app).engine.dispose()
    sandbox.reset()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def session(app: Flask, database_url: str) -> Iterator[Session]:
    """A session for arranging data and checking results, in autocommit mode: every read is
    fresh (no REPEATABLE READ snapshot) and it never holds the locks the app under test needs."""
    engine = create_engine(normalize_database_url(database_url), isolation_level="AUTOCOMMIT")
    with Session(engine, expire_on_commit=False) as session:
        yield session
    engine.dispose()


def _empty_all_tables(app: Flask) -> None:
    # Foreign key checks off: members and qr_scenes reference each other.
    engine = bound_database(app).engine
    if engine.dialect.name == "sqlite":
        # The pragma is ignored inside a transaction, so use the raw connection (autocommit).
        raw = engine.raw_connection()
        try:
            raw.execute("PRAGMA foreign_keys=OFF")
            for table in reversed(Base.metadata.sorted_tables):
                raw.execute(f"DELETE FROM {table.name}")
        finally:
            raw.close()
        return
    with engine.begin() as connection:
        connection.execute(text("SET FOREIGN_KEY_CHECKS=0"))
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())
        connection.execute(text("SET FOREIGN_KEY_CHECKS=1"))
