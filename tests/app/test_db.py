"""The transaction boundary: commit once, roll back on error, re-run work that lost a race."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import Engine, QueuePool, func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import create_app
from app.config import Config, PoolSettings
from app.db import (
    ConcurrentUpdate,
    RetryableConflict,
    bound_database,
    insert_row,
    run_transaction,
    transaction,
)
from app.models import Store
from tests import factories
from tests.conftest import autocommit_session


def test_a_failing_unit_of_work_leaves_nothing_behind(app: Flask, session: Session) -> None:
    with pytest.raises(RuntimeError), transaction(app) as work:
        factories.create_store(work)
        raise RuntimeError("boom")

    assert session.scalar(select(func.count()).select_from(Store)) == 0


def test_work_that_loses_a_race_is_run_again_in_a_fresh_transaction(app: Flask, session: Session) -> None:
    attempts: list[int] = []

    def work(work_session: Session) -> str:
        factories.create_store(work_session, name=f"第{len(attempts) + 1}次")
        attempts.append(1)
        if len(attempts) < 3:
            raise RetryableConflict()
        return "done"

    assert run_transaction(work, app=app) == "done"
    assert session.scalars(select(Store.name)).all() == ["第3次"]


def test_work_that_keeps_losing_gives_up_with_a_clear_conflict(app: Flask) -> None:
    def work(_: Session) -> None:
        raise RetryableConflict()

    with pytest.raises(ConcurrentUpdate) as raised:
        run_transaction(work, attempts=2, app=app)

    assert raised.value.status == 409
    assert raised.value.code == "CONCURRENT_UPDATE"


def test_a_deadlock_is_retried_and_finally_a_clear_conflict_not_a_500(app: Flask) -> None:
    from sqlalchemy.exc import OperationalError

    calls: list[int] = []

    def deadlocking(_: Session) -> None:
        calls.append(1)
        raise OperationalError("UPDATE ...", {}, Exception(1213, "Deadlock found when trying to get lock"))

    with pytest.raises(ConcurrentUpdate):
        run_transaction(deadlocking, attempts=3, app=app)

    assert len(calls) == 3


def test_other_database_errors_are_not_retried(app: Flask) -> None:
    from sqlalchemy.exc import OperationalError

    calls: list[int] = []

    def broken(_: Session) -> None:
        calls.append(1)
        raise OperationalError("SELECT ...", {}, Exception(2006, "MySQL server has gone away"))

    with pytest.raises(OperationalError):
        run_transaction(broken, app=app)

    assert len(calls) == 1


def test_insert_row_writes_defaults_and_leaves_the_row_in_the_session_as_loaded(
    app: Flask, session: Session
) -> None:
    with transaction(app) as work:
        store = insert_row(work, Store(code="S-1", name="喜茶 🍵", category="餐饮"))
        assert store.id is not None and store.created_at is not None  # the Python default, applied
        assert work.get(Store, store.id) is store  # held as loaded: no second copy, no SELECT
        store.floor = "B1"  # and changes to it flush as an UPDATE

    saved = session.get_one(Store, store.id)
    assert (saved.name, saved.floor) == ("喜茶 🍵", "B1")
    assert abs(saved.created_at - store.created_at).total_seconds() < 1  # MariaDB keeps whole seconds


def test_insert_row_raises_on_a_duplicate_and_the_transaction_goes_on(app: Flask, session: Session) -> None:
    with transaction(app) as work:
        insert_row(work, Store(code="S-1", name="一店", category="餐饮"))
        with pytest.raises(IntegrityError):
            insert_row(work, Store(code="S-1", name="重复", category="餐饮"))
        second = insert_row(work, Store(code="S-2", name="二店", category="餐饮"))

    assert second.floor is None  # unset, yet readable once the session is gone: nothing left expired
    assert session.scalars(select(Store.name).order_by(Store.code)).all() == ["一店", "二店"]


def test_the_pool_settings_shape_both_engines(config: Config) -> None:
    # Building an engine connects to nothing: the settings are read back from the pools.
    mysql = "mysql+pymysql://nobody@127.0.0.1:1/mallmember"
    app = create_app(
        config.with_overrides(
            DATABASE_URL=mysql,
            REPORT_DATABASE_URL=mysql.replace("127.0.0.1", "127.0.0.2"),
            DB_POOL_SIZE=3,
            DB_MAX_OVERFLOW=4,
            DB_POOL_RECYCLE_SECONDS=600,
            DB_POOL_TIMEOUT_SECONDS=7,
            DB_POOL_PRE_PING=True,
        )
    )
    database = bound_database(app)

    for engine in (database.engine, database.report_engine):
        assert isinstance(engine, Engine) and isinstance(engine.pool, QueuePool)
        assert engine.pool.size() == 3
        assert engine.pool._max_overflow == 4
        assert engine.pool._recycle == 600
        assert engine.pool._timeout == 7
        assert engine.pool._pre_ping is True


def test_pool_settings_come_from_the_environment() -> None:
    config = Config.from_env(
        {
            "DB_POOL_SIZE": "5",
            "DB_MAX_OVERFLOW": "0",
            "DB_POOL_RECYCLE_SECONDS": "300",
            "DB_POOL_TIMEOUT_SECONDS": "2",
            "DB_POOL_PRE_PING": "true",
        }
    )

    assert config.pool_settings() == PoolSettings(
        size=5, max_overflow=0, recycle_seconds=300, timeout_seconds=2, pre_ping=True
    )
    assert Config.from_env({}).pool_settings() == PoolSettings()


@pytest.mark.mariadb
def test_a_connection_returns_to_the_pool_without_a_rollback_after_a_commit_but_rolled_back_inside_one(
    config: Config, session: Session
) -> None:
    app = create_app(config.with_overrides(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0))
    engine = bound_database(app).engine
    store = factories.create_store(session)
    session.commit()

    def rollbacks_sent() -> int:
        # The pool's single connection, so the counter is that connection's own.
        with transaction(app) as work:
            return int(work.execute(text("SHOW SESSION STATUS LIKE 'Com_rollback'")).one()[1])

    before = rollbacks_sent()
    for _ in range(3):
        with transaction(app) as work:
            work.get(Store, store.id, with_for_update=True)
    assert rollbacks_sent() == before  # each COMMIT was the end of it: no ROLLBACK round trip

    # Returned in the middle of a transaction (raw DBAPI use, or an error before the commit):
    # rolled back on the way in, so its row lock does not outlive it.
    raw = engine.raw_connection()
    raw.cursor().execute("SELECT id FROM stores WHERE id = %s FOR UPDATE", (store.id,))
    raw.close()
    assert rollbacks_sent() == before + 1
    with autocommit_session(config.DATABASE_URL) as other, other.begin():
        nowait = text("SELECT id FROM stores WHERE id = :id FOR UPDATE NOWAIT")
        assert other.execute(nowait, {"id": store.id}).scalar_one() == store.id
