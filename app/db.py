"""Declarative base, engine set-up and the transaction boundary.

Services receive a `Session` and only `flush()`; whoever opens `transaction()`
(a request, a CLI command, a job) commits once, or rolls everything back.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from typing import Any, ClassVar, TypeVar, cast

from flask import Flask, current_app, g, has_request_context, request
from sqlalchemy import DateTime, Engine, Enum, Insert, MetaData, Table, create_engine, event, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Session, make_transient_to_detached, sessionmaker
from sqlalchemy.pool import PoolResetState
from sqlalchemy.sql.expression import ColumnElement
from sqlalchemy.types import TypeDecorator

from app.config import PoolSettings
from app.errors import DomainError

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Every MySQL/MariaDB table is utf8mb4: member nicknames carry emoji.
TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite and MariaDB both drop tzinfo."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


def normalize_database_url(url: str) -> str:
    """Force utf8mb4 on MySQL connections whatever the URL says."""
    parsed = make_url(url)
    if parsed.get_backend_name() in {"mysql", "mariadb"}:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    return parsed.render_as_string(hide_password=False)


def build_engine(url: str, pool: PoolSettings | None = None, *, read_only: bool = False) -> Engine:
    """An engine for `url`; `read_only` makes every transaction of it refuse writes (for a replica)."""
    url = normalize_database_url(url)
    backend = make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_read_only_pragmas if read_only else _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_deferred if read_only else _sqlite_begin_immediate)
        return engine
    pool = pool or PoolSettings()
    # READ COMMITTED, not MariaDB's REPEATABLE READ: every write here locks the member row first,
    # and after that a plain read must see what the previous holder committed; REPEATABLE READ
    # would show a stale snapshot, and its gap locks deadlock neighbouring members' inserts.
    # Pre-ping is off unless asked for (a round trip per checkout); stale connections are recycled.
    # LOCAL INFILE lets imports bulk-load a batch they have validated (app.services.import_purchases);
    # it gives the server a way to ask for client files, so point DATABASE_URL only at your own server.
    engine = create_engine(
        url,
        isolation_level="READ COMMITTED",
        pool_size=pool.size,
        max_overflow=pool.max_overflow,
        pool_recycle=pool.recycle_seconds,
        pool_timeout=pool.timeout_seconds,
        pool_pre_ping=pool.pre_ping,
        connect_args={} if read_only else {"local_infile": True},
        pool_reset_on_return=None,  # _skip_reset_after_commit does it
    )
    _skip_reset_after_commit(engine)
    if read_only:
        event.listen(engine, "begin", _mysql_begin_read_only)
    return engine


# Set on a pooled connection's info while what it last did was end a transaction (see below).
_TRANSACTION_ENDED = "mallmember_transaction_ended"


def _skip_reset_after_commit(engine: Engine) -> None:
    """The pool's reset on return, minus the ROLLBACK round trip after every COMMIT.

    SQLAlchemy's own reset rolls back whatever the connection did (two of a purchase's twelve round
    trips were that). Here a connection comes back clean when the last thing it did was a COMMIT or
    ROLLBACK that raised nothing; anything else (a checkout, a transaction begun, a database error,
    raw DBAPI use) marks it, and a marked connection is still rolled back on the way in."""

    def mark(info: dict[str, Any], ended: bool) -> None:
        info[_TRANSACTION_ENDED] = ended

    event.listen(engine, "checkout", lambda _dbapi, record, _proxy: mark(record.info, False))
    event.listen(engine, "begin", lambda connection: mark(connection.info, False))
    event.listen(engine, "commit", lambda connection: mark(connection.info, True))
    event.listen(engine, "rollback", lambda connection: mark(connection.info, True))

    @event.listens_for(engine, "handle_error")
    def failed(context: Any) -> None:  # a COMMIT or ROLLBACK that raised comes through here
        connection = context.connection
        if connection is not None and not connection.closed and not connection.invalidated:
            mark(connection.info, False)

    @event.listens_for(engine, "reset")
    def reset(dbapi_connection: Any, record: Any, state: PoolResetState) -> None:
        if state.terminate_only or state.transaction_was_reset or record.info.get(_TRANSACTION_ENDED):
            return
        dbapi_connection.rollback()


def _mysql_begin_read_only(connection: Any) -> None:
    connection.exec_driver_sql("START TRANSACTION READ ONLY")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # We emit BEGIN ourselves (below); pysqlite's own would start transactions too late.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    """SQLite ignores FOR UPDATE; taking the write lock at BEGIN gives the same serialisation."""
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_read_only_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


def _sqlite_begin_deferred(connection: Any) -> None:
    """A report takes no write lock: it must not queue behind (or hold up) the writers."""
    connection.exec_driver_sql("BEGIN")


class BoundDatabase:
    """The engine and session factory of one app instance, and those of its report replica, if any."""

    def __init__(
        self,
        engine: Engine,
        session_info: dict[str, Any] | None = None,
        report_engine: Engine | None = None,
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker(engine, expire_on_commit=False, info=session_info)
        self.report_engine = report_engine
        self.report_sessionmaker = (
            sessionmaker(report_engine, expire_on_commit=False, info=session_info)
            if report_engine is not None
            else None
        )

    def dispose(self, *, close: bool = True) -> None:
        """Drop the pooled connections; `close=False` in a forked child leaves the parent's open."""
        self.engine.dispose(close=close)
        if self.report_engine is not None:
            self.report_engine.dispose(close=close)


def init_app(
    app: Flask,
    url: str,
    *,
    session_info: dict[str, Any] | None = None,
    pool: PoolSettings | None = None,
    report_url: str | None = None,
) -> None:
    """Bind the app to its database (and its report replica); `session_info` is copied into every
    session's `info`."""
    report_engine = build_engine(report_url, pool, read_only=True) if report_url else None
    app.extensions["db"] = BoundDatabase(build_engine(url, pool), session_info, report_engine)
    app.teardown_request(_close_opened_transaction)


def bound_database(app: Flask | None = None) -> BoundDatabase:
    return (app or current_app).extensions["db"]


def concurrent_writers(wanted: int, app: Flask | None = None) -> int:
    """How many threads should write to the database at once, of `wanted`: one on SQLite, where more
    would only queue for its single write lock."""
    if bound_database(app).engine.dialect.name == "sqlite":
        return 1
    return max(1, wanted)


@contextmanager
def transaction(app: Flask | None = None) -> Iterator[Session]:
    """One unit of work: commit when the block ends, roll back if it raises.

    Within a request, the session starts with `g.session_info` (see `seed_request_sessions`), or,
    without `app`, is the one an `opening_transaction` left open for it.
    """
    in_request = has_request_context()
    opened: Session | None = g.pop(_OPENED, None) if in_request and app is None else None
    if opened is not None:
        session = opened
        begun = session.get_transaction()
        assert begun is not None
        with session, begun:
            yield session
    else:
        session = _new_session(app, in_request)
        with session, session.begin():
            yield session
    if in_request and session.info.get(DROP_REQUEST_SEED):
        g.pop("session_info", None)


def _new_session(app: Flask | None, in_request: bool) -> Session:
    seed = g.get("session_info") if in_request else None
    make_session = bound_database(app).sessionmaker
    return make_session(info=dict(seed)) if seed else make_session()


# The request's transaction begun by `opening_transaction`, until a `transaction()` continues it.
_OPENED = "opened_transaction"
_CONTINUES_OPENING = "continues_opening_transaction"

F = TypeVar("F", bound=Callable[..., Any])


def continues_opening_transaction(view: F) -> F:
    """Marks a view whose first step is its transaction (no outside call before it): the reads that
    authenticate its caller and its own work then run in one transaction, with one COMMIT where
    there would be two. For hot endpoints. Goes right below the route decorator."""
    setattr(view, _CONTINUES_OPENING, True)
    return view


@contextmanager
def opening_transaction(app: Flask | None = None) -> Iterator[Session]:
    """Reads that open a request (checking its caller): an ordinary `transaction()`, except in a
    request to a view marked `continues_opening_transaction`. There the transaction stays open when
    the block ends, and the request's next `transaction()` continues it; a request that never opens
    one rolls it back when it ends. A block that raises rolls back at once."""
    in_request = has_request_context() and app is None
    view = current_app.view_functions.get(request.endpoint or "") if in_request else None
    if not getattr(view, _CONTINUES_OPENING, False) or g.get(_OPENED) is not None:
        with transaction(app) as session:
            yield session
        return
    session = _new_session(app, in_request=True)
    session.begin()
    try:
        yield session
    except BaseException:
        session.close()
        raise
    setattr(g, _OPENED, session)


def _close_opened_transaction(_error: BaseException | None) -> None:
    opened: Session | None = g.pop(_OPENED, None)
    if opened is not None:
        opened.close()


@contextmanager
def report_transaction(app: Flask | None = None) -> Iterator[Session]:
    """A read-only transaction for reports, KPIs and exports: on REPORT_DATABASE_URL's replica when
    one is configured (where any write fails), else an ordinary transaction on the primary."""
    database = bound_database(app)
    if database.report_sessionmaker is None:
        with transaction(app) as session:
            yield session
        return
    with database.report_sessionmaker() as session, session.begin():
        yield session


# Set in a session's info by a unit of work that made the request's seed stale (e.g. it changed
# what the seed describes): the request's later sessions then start unseeded.
DROP_REQUEST_SEED = "drop_request_seed"


def seed_request_sessions(info: dict[str, Any]) -> None:
    """What every later session of this request starts with in its `info`, e.g. facts already read."""
    g.session_info = info


class RetryableConflict(Exception):
    """A concurrent transaction won a race (e.g. inserted the same unique key): run the work again.

    The retry runs in a new transaction, which sees the winner's rows.
    """


class ConcurrentUpdate(DomainError):
    code, status, message = "CONCURRENT_UPDATE", 409, "操作过于频繁，请稍后重试"


# MySQL/MariaDB: deadlock victim, lock wait timeout. Both say "restart the transaction".
_RETRYABLE_MYSQL_ERRORS = frozenset({1213, 1205})


def run_transaction(work: Callable[[Session], T], *, attempts: int = 3, app: Flask | None = None) -> T:
    """Run `work` in a transaction, re-running it when it loses a race or a deadlock.

    `work` must be safe to repeat: keep calls to the outside world (WeChat, ...) out of it.
    """
    for attempt in range(1, attempts + 1):
        try:
            with transaction(app) as session:
                return work(session)
        except RetryableConflict as exc:
            if attempt == attempts:
                raise ConcurrentUpdate() from exc
        except OperationalError as exc:
            if _mysql_error_code(exc) not in _RETRYABLE_MYSQL_ERRORS:
                raise
            if attempt == attempts:
                raise ConcurrentUpdate() from exc
    raise AssertionError("unreachable")


RowT = TypeVar("RowT", bound=Base)


@contextmanager
def in_memory_group_by(session: Session, megabytes: int) -> Iterator[None]:
    """Let MariaDB/MySQL keep the temporary table of a large GROUP BY in memory (up to `megabytes`)
    for the statements inside, instead of spilling it to disk; the connection's defaults come back
    after. SQLite has no such limit."""
    if session.get_bind().dialect.name != "mysql":
        yield
        return
    limit = megabytes * 1024 * 1024
    session.execute(
        text("SET SESSION tmp_table_size = :limit, max_heap_table_size = :limit"), {"limit": limit}
    )
    try:
        yield
    finally:
        session.execute(text("SET SESSION tmp_table_size = DEFAULT, max_heap_table_size = DEFAULT"))


def insert_row(session: Session, row: RowT) -> RowT:
    """INSERT a new object's row with a prebuilt Core statement, then hold it in the session as loaded.

    For hot paths: a unit-of-work flush of one object costs about three times the CPU of this.
    Column defaults are applied here, so the object shows every value it was written with.
    Objects already pending in the session are flushed first (the row may reference them).
    Raises IntegrityError like a flush would; the session's transaction stays usable.
    """
    session.flush()
    table = cast(Table, row.__table__)
    values: dict[str, Any] = {}
    for column in table.columns:
        value = getattr(row, column.key)
        if value is None and (column.primary_key or column.server_default is not None):
            continue  # the database fills it in; read on first access
        if value is None and column.default is not None:
            default = column.default
            value = default.arg(None) if default.is_callable else default.arg  # type: ignore[attr-defined]
        setattr(row, column.key, value)  # set even when None: marks it loaded, not expired
        values[column.key] = value
    result = session.connection().execute(_insert_statement(type(row)), values)
    for column, value in zip(table.primary_key, result.inserted_primary_key or (), strict=True):
        setattr(row, column.key, value)
    make_transient_to_detached(row)
    session.add(row)
    return row


@cache
def _insert_statement(model: type[Base]) -> Insert:
    return insert(model)


def _mysql_error_code(exc: OperationalError) -> int | None:
    args = getattr(exc.orig, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def str_enum(enum_cls: type[enum.StrEnum], length: int = 16) -> Enum:
    """A portable VARCHAR column holding the enum's *values* ('store_staff', not 'STORE_STAFF')."""
    return Enum(
        enum_cls,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
    )


class plus_days(ColumnElement[datetime]):
    """`moment + days` in SQL, for a UTC DATETIME column: DATE_ADD on MariaDB, strftime() on SQLite."""

    inherit_cache = True
    type = UTCDateTime()

    def __init__(self, moment: ColumnElement[Any] | Any, days: int) -> None:
        self.moment, self.days = moment, days


@compiles(plus_days)
def _plus_days_default(element: plus_days, compiler: Any, **kw: Any) -> str:
    return f"DATE_ADD({compiler.process(element.moment, **kw)}, INTERVAL {int(element.days)} DAY)"


@compiles(plus_days, "sqlite")
def _plus_days_sqlite(element: plus_days, compiler: Any, **kw: Any) -> str:
    # SQLAlchemy stores SQLite datetimes as 'YYYY-MM-DD HH:MM:SS.ffffff'; keep that shape to compare.
    moment = compiler.process(element.moment, **kw)
    return f"strftime('%Y-%m-%d %H:%M:%S.000000', {moment}, '+{int(element.days)} days')"
