"""Benchmark (issue 8): daily advisor task generation on a big mall.

    .venv/bin/python scripts/bench/tasks.py --copy-from mysql+pymysql://root@127.0.0.1:3306/mallmember_nightly
        [--database-url mysql+pymysql://root@127.0.0.1:3306/mallmember_tasks] [--advisors 500] [--reuse]
    .venv/bin/python scripts/bench/tasks.py --members 20000 --purchases 200000     # a small mall of its own

The database in `--database-url` is the benchmark's own: it is DROPPED and recreated (unless `--reuse`
finds it already prepared). It is filled either by copying, on the same server, what generation reads
from a database the nightly benchmark prepared (`--copy-from`: tiers, stores, staff, QR scenes, members,
tags, members' tags, statistics and lifecycle transitions; the source is only read; if it holds no
member tags, the copy is tagged by the nightly refresh's tags step), or by `scripts/gen_data.py`
followed by the nightly refresh.

The setup step is safe to re-run: it adds advisors up to `--advisors` (two per store come from gen_data),
spreads the bound members (a quarter of them) over all advisors, records a lifecycle transition
active → dormant today for 1 in 20 dormant members when today has none (a first night records none),
and creates six typical task rules (tag, segment and lifecycle triggers). Then, from no tasks at all (the
heaviest day: no cool-down holds anyone back), it times `flask tasks generate` as a subprocess (what
the scheduler runs), and runs it again for the same day (it must add nothing). Target: ≤ 20 s.

Then the push: with the sandbox (`python -m app.sandbox`, its own process) knowing every active staff
member, it times `flask push digests --date <day>` as a subprocess from an empty outbox: one digest per
advisor with tasks (and a summary per store with managers) enqueued and sent through the outbox to the
sandbox's `message/send`; checks the sandbox recorded exactly one message per advisor, and that running it
again sends nothing. Target: ≤ 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))

import benchdb  # noqa: E402
import gen_data  # noqa: E402
import harness  # noqa: E402
import requests  # noqa: E402
import results  # noqa: E402
from harness import log  # noqa: E402
from sqlalchemy import select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import nightly  # noqa: E402
from app.db import transaction  # noqa: E402
from app.extensions import mall_time  # noqa: E402
from app.models import LifecycleStage, Segment, Tag, TagKind, TaskRule, TaskTrigger, TaskType  # noqa: E402
from app.services import tags, task_rules, tasks  # noqa: E402

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/mallmember_tasks"
TARGET_SECONDS = 20.0
PUSH_TARGET_SECONDS = 5.0
QUICK = {"members": 2_000, "purchases": 20_000, "advisors": 20}
# What generation reads, in an order that satisfies foreign keys (checks are off while copying anyway).
COPIED_TABLES = (
    "tiers",
    "stores",
    "staff",
    "qr_scenes",
    "members",
    "tags",
    "member_tags",
    "segmentation_settings",
    "member_stats",
    "lifecycle_transitions",
)
# The rule tags the task rules below use, as scripts/bench/nightly.py defines them.
RULE_TAGS = {
    "high-value": ("年消费满5000", {"field": "spend_365d_fen", "op": ">=", "value": 500_000}),
    "frequent": ("月消费4次以上", {"field": "purchase_count_30d", "op": ">=", "value": 4}),
}
BENCH_SEGMENTS = {
    "7天内生日": {"field": "birthday_within_days", "op": "<=", "value": 7},
    "3天内有券到期": {"field": "coupon_expiring_within_days", "op": "<=", "value": 3},
}
# (name, trigger, tag code / segment name / (from, to), task type, priority, cool-down days, due in days)
BENCH_RULES: list[tuple[str, TaskTrigger, Any, TaskType, int, int, int]] = [
    ("生日祝福", TaskTrigger.SEGMENT, "7天内生日", TaskType.BIRTHDAY_GREETING, 1, 300, 7),
    ("券到期提醒", TaskTrigger.SEGMENT, "3天内有券到期", TaskType.COUPON_EXPIRING_REMINDER, 1, 7, 2),
    ("高价值邀约", TaskTrigger.TAG, "high-value", TaskType.VIP_INVITATION, 2, 30, 5),
    (
        "沉睡唤醒",
        TaskTrigger.LIFECYCLE,
        (LifecycleStage.ACTIVE, LifecycleStage.DORMANT),
        TaskType.WIN_BACK_DORMANT,
        3,
        60,
        3,
    ),
    ("新会员欢迎", TaskTrigger.TAG, "lifecycle:new", TaskType.NEW_MEMBER_WELCOME, 4, 90, 3),
    ("常客回访", TaskTrigger.TAG, "frequent", TaskType.POST_PURCHASE_FOLLOW_UP, 5, 30, 3),
]
TEMPLATE = "{会员昵称}您好，我是{门店}的{顾问}，给您准备了{等级}专属福利，{到期日}前来店可用"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--copy-from", help="a database prepared by scripts/bench/nightly.py (read only)")
    parser.add_argument("--members", type=int, default=20_000, help="without --copy-from: gen_data size")
    parser.add_argument("--purchases", type=int, default=200_000)
    parser.add_argument("--advisors", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=tasks.DEFAULT_BATCH_SIZE)
    parser.add_argument("--reuse", action="store_true", help="keep the database if it is already prepared")
    parser.add_argument("--push-only", action="store_true", help="skip generation: push the day's digests")
    results.add_suite_options(parser, QUICK)
    args = results.parse_with_quick(parser, argv, QUICK)
    url = args.database_url
    if args.copy_from and make_url(args.copy_from).database == make_url(url).database:
        raise SystemExit("--copy-from must name another database than --database-url")
    version = harness.ensure_mariadb(url)
    harness.compile_project()

    if not (args.reuse and _scalar(url, "SELECT COUNT(*) FROM members")):
        began = time.perf_counter()
        if args.copy_from:
            log(
                f"copying what generation reads from {make_url(args.copy_from).database} (database recreated)"
            )
            benchdb.recreate_database(url)
            _copy(url, make_url(args.copy_from).database or "")
            if not _scalar(url, "SELECT COUNT(*) FROM member_tags"):
                log("the source has no member tags (its nightly refresh was cut short?): tagging the copy")
                app = benchdb.build_app(url)
                with app.app_context():
                    at = mall_time()
                nightly.refresh(app, at, steps=("tags",))
        else:
            log(f"generating {args.members:,} members, {args.purchases:,} purchases (database recreated)")
            gen_data.generate(url, members=args.members, purchases=args.purchases, recreate=True)
            app = benchdb.build_app(url)
            with app.app_context(), transaction() as session:
                at = mall_time()
                for code, (name, rule) in RULE_TAGS.items():
                    tags.create_tag(
                        session, code=code, name=name, kind=TagKind.RULE, rule=rule, description=None,
                        operator_id=None, at=at,
                    )  # fmt: skip
            nightly.refresh(app, at)
        log(f"prepared in {time.perf_counter() - began:.0f} s")

    app = benchdb.build_app(url)
    with app.app_context():
        day = mall_time().today
    _setup(url, app, args.advisors, day)
    with app.app_context(), transaction() as session:
        cap = task_rules.settings_of(session).daily_cap_per_advisor
    members = _scalar(url, "SELECT COUNT(*) FROM members")
    bound = _scalar(url, "SELECT COUNT(*) FROM members WHERE advisor_id IS NOT NULL")
    advisors = _scalar(url, "SELECT COUNT(*) FROM staff WHERE role = 'advisor'")
    size = f"{advisors:,} advisors, {results.short_count(members)} members"
    settings = {"members": members, "advisors": advisors, "bound": bound, "batch_size": args.batch_size}
    if args.push_only:
        pushed, push_figure = _bench_push(url, day, size)
        results.write_json(args.json, "tasks", [push_figure], ok=pushed, settings=settings)
        return 0 if pushed else 1
    _execute(url, "TRUNCATE TABLE advisor_tasks", "TRUNCATE TABLE advisor_task_candidates")

    log(f"flask tasks generate --date {day}")
    first_steps, first_seconds, _ = _run_generate(url, day, args.batch_size)
    log("again, the same day")
    _, again_seconds, again_output = _run_generate(url, day, args.batch_size)

    generated = _scalar(url, "SELECT COUNT(*) FROM advisor_tasks")
    pool = _scalar(url, "SELECT COUNT(*) FROM advisor_tasks WHERE advisor_id IS NULL")
    busiest = _scalar(
        url,
        "SELECT COALESCE(MAX(n), 0) FROM (SELECT COUNT(*) n FROM advisor_tasks WHERE advisor_id IS NOT NULL "
        "GROUP BY advisor_id) x",
    )
    with_tasks = _scalar(url, "SELECT COUNT(DISTINCT advisor_id) FROM advisor_tasks")
    added_again = "0 tasks" in again_output.splitlines()[-1]
    print()
    print(
        f"task generation on {members:,} members ({bound:,} bound to {advisors:,} advisors, the rest in "
        f"store pools); MariaDB {version}; {os.cpu_count()} cores; batch size {args.batch_size:,}; "
        f"{len(BENCH_RULES)} rules"
    )
    print(f"{'step':<12}{'seconds':>9}{'rows':>12}")
    for name, (seconds, rows) in first_steps.items():
        print(f"{name:<12}{seconds:>9.2f}{rows:>12,}")
    print(f"{'total':<12}{first_seconds:>9.2f}   (the whole command)")
    print(
        f"generated {generated:,} tasks ({pool:,} in store pools) for {with_tasks:,} advisors; "
        f"busiest advisor {busiest} (cap {cap})"
    )
    print(f"same day again: {again_seconds:.2f} s, {'nothing added' if added_again else 'TASKS ADDED'}")
    print(
        f"target: generation {first_seconds:.1f} s <= {TARGET_SECONDS:.0f} s: "
        f"{'met' if first_seconds <= TARGET_SECONDS else 'MISSED'}"
    )
    pushed, push_figure = _bench_push(url, day, size)
    generation = results.Figure(
        f"advisor task generation ({size})",
        first_seconds,
        None,
        "s",
        f"<= {TARGET_SECONDS:.0f} s",
        first_seconds <= TARGET_SECONDS,
        note=f"the whole `flask tasks generate` command; {generated:,} tasks",
    )
    ok = added_again and busiest <= cap and pushed
    results.write_json(args.json, "tasks", [generation, push_figure], ok=ok, settings=settings)
    return 0 if ok else 1


def _bench_push(url: str, day: Any, size: str) -> tuple[bool, results.Figure]:
    """Time `flask push digests` from an empty outbox to the sandbox; True if every advisor with open
    tasks got exactly one digest and a second run sent nothing; the figure for the suite."""
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.sandbox",
            "--wechat-port",
            "0",
            "--wecom-port",
            "0",
            "--carpark-port",
            "0",
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert sandbox.stdout is not None
        wecom_url = json.loads(sandbox.stdout.readline())["wecom"]
        staff = _rows(url, "SELECT wecom_userid, name FROM staff WHERE is_active = 1")
        requests.post(
            f"{wecom_url}/sandbox/users", json={"users": dict(staff)}, timeout=30
        ).raise_for_status()
        expected = {
            userid
            for (userid,) in _rows(
                url,
                "SELECT DISTINCT s.wecom_userid FROM advisor_tasks t JOIN staff s ON s.id = t.advisor_id "
                "WHERE s.is_active = 1 AND s.role = 'advisor' AND t.status = 'open' "
                f"AND t.business_date <= '{day}'",
            )
        }
        _execute(url, "TRUNCATE TABLE wecom_outbox")
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "APP_ENV": "development",
            "REDIS_URL": "",
            "WECOM_API_BASE": wecom_url,
        }
        command = [sys.executable, "-m", "flask", "--app", "wsgi", "push", "digests", "--date", str(day)]
        log(f"flask push digests --date {day} ({len(expected)} advisors with open tasks)")
        began = time.perf_counter()
        first = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
        )
        seconds = time.perf_counter() - began
        if first.returncode != 0:
            raise SystemExit(f"flask push digests failed:\n{first.stdout}{first.stderr}")
        log("again, the same day")
        again = subprocess.run(
            command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False
        )
        messages = requests.get(f"{wecom_url}/sandbox/messages", timeout=30).json()["messages"]
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)
    digests = [message["touser"] for message in messages if message["touser"] in expected]
    exactly_once = sorted(digests) == sorted(expected)
    nothing_again = "enqueued 0 digests, 0 store summaries" in again.stdout and "sent 0," in again.stdout
    print()
    print(f"push: {first.stdout.strip()}")
    print(
        f"{len(digests):,} digests to {len(expected):,} advisors with open tasks, "
        f"{len(messages) - len(digests):,} store summaries: {'exactly one each' if exactly_once else 'WRONG'}"
    )
    print(f"same day again: {'nothing sent' if nothing_again else 'SENT AGAIN'}")
    print(
        f"target: push {seconds:.1f} s <= {PUSH_TARGET_SECONDS:.0f} s (the whole command): "
        f"{'met' if seconds <= PUSH_TARGET_SECONDS else 'MISSED'}"
    )
    figure = results.Figure(
        f"advisor digests pushed through the outbox ({size})",
        seconds,
        None,
        "s",
        f"<= {PUSH_TARGET_SECONDS:.0f} s",
        seconds <= PUSH_TARGET_SECONDS,
        note=f"the whole `flask push digests` command; {len(digests):,} digests to the sandbox",
    )
    return exactly_once and nothing_again, figure


def _rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    connection = _connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        connection.close()


def _copy(url: str, source: str) -> None:
    connection = _connect(url)
    target = make_url(url).database
    try:
        with connection.cursor() as cursor:
            cursor.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
            for table in COPIED_TABLES:
                # The source may be at another revision: copy the columns both have, and give the
                # target's other required columns a plain value (e.g. today for a date).
                target_columns = _columns(cursor, target, table)
                source_names = {name for name, *_ in _columns(cursor, source, table)}
                names, values = [], []
                for name, data_type, nullable, default in target_columns:
                    if name in source_names:
                        names.append(f"`{name}`")
                        values.append(f"`{name}`")
                    elif nullable == "NO" and default is None:
                        names.append(f"`{name}`")
                        values.append(_filler(data_type))
                began = time.perf_counter()
                cursor.execute(
                    f"INSERT INTO `{target}`.`{table}` ({', '.join(names)}) "
                    f"SELECT {', '.join(values)} FROM `{source}`.`{table}`"
                )
                log(f"  {table}: {cursor.rowcount:,} rows in {time.perf_counter() - began:.1f} s")
                connection.commit()
    finally:
        connection.close()


def _columns(cursor: Any, schema: str | None, table: str) -> list[tuple[str, str, str, Any]]:
    cursor.execute(
        "SELECT column_name, data_type, is_nullable, column_default FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    )
    return list(cursor.fetchall())


def _filler(data_type: str) -> str:
    if data_type in ("date", "datetime", "timestamp"):
        return "UTC_DATE()" if data_type == "date" else "UTC_TIMESTAMP()"
    return "''" if "char" in data_type or "text" in data_type else "0"


def _setup(url: str, app: Any, advisor_count: int, day: Any) -> None:
    """Advisors, bindings, today's transitions and the rules; each part leaves a prepared database as
    it is."""
    stores = _scalar(url, "SELECT COUNT(*) FROM stores")
    existing = _scalar(url, "SELECT COUNT(*) FROM staff WHERE role = 'advisor'")
    if existing < advisor_count:
        rows = [
            (f"bench-adv{number:05d}", f"顾问B{number}", "advisor", number % stores + 1, 1)
            for number in range(existing, advisor_count)
        ]
        connection = _connect(url)
        try:
            with connection.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO staff (wecom_userid, name, role, store_id, is_active, created_at) "
                    "VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP())",
                    rows,
                )
            connection.commit()
        finally:
            connection.close()
    advisors = _scalar(url, "SELECT COUNT(*) FROM staff WHERE role = 'advisor'")
    # Bound members (a quarter, from gen_data) spread evenly over every advisor.
    _execute(
        url,
        "UPDATE members m JOIN (SELECT id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS k FROM staff "
        f"WHERE role = 'advisor') a ON a.k = m.id % {advisors} SET m.advisor_id = a.id "
        "WHERE m.advisor_id IS NOT NULL AND m.advisor_id <> a.id",
    )
    if not _scalar(url, f"SELECT COUNT(*) FROM lifecycle_transitions WHERE business_date = '{day}'"):
        _execute(
            url,
            "INSERT INTO lifecycle_transitions (member_id, from_stage, to_stage, business_date) "
            f"SELECT member_id, 'active', 'dormant', '{day}' FROM member_stats "
            "WHERE lifecycle_stage = 'dormant' AND member_id % 20 = 0",
        )
    with app.app_context(), transaction() as session:
        segments = {segment.name: segment.id for segment in session.scalars(select(Segment))}
        for name, rule in BENCH_SEGMENTS.items():
            if name not in segments:
                segment = Segment(name=name, rule=rule)
                session.add(segment)
                session.flush()
                segments[name] = segment.id
        tag_ids = dict(session.execute(select(Tag.code, Tag.id)).all())
        named = set(session.scalars(select(TaskRule.name)))
        for name, trigger, target, task_type, priority, cool_down, due_in in BENCH_RULES:
            if name in named:
                continue
            reference: dict[str, Any]
            if trigger is TaskTrigger.TAG:
                if target not in tag_ids:
                    raise SystemExit(
                        f"tag {target} is missing: prepare the source with scripts/bench/nightly.py"
                    )
                reference = {"tag_id": tag_ids[target]}
            elif trigger is TaskTrigger.SEGMENT:
                reference = {"segment_id": segments[target]}
            else:
                reference = {"from_stage": target[0], "to_stage": target[1]}
            values = task_rules.RuleValues(
                name=name,
                trigger_kind=trigger,
                task_type=task_type,
                message_template=TEMPLATE,
                priority=priority,
                cool_down_days=cool_down,
                due_in_days=due_in,
                **reference,
            )
            task_rules.create_rule(session, values, operator_id=None)


def _run_generate(url: str, day: Any, batch_size: int) -> tuple[dict[str, tuple[float, int]], float, str]:
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "development", "REDIS_URL": ""}
    command = [
        sys.executable, "-m", "flask", "--app", "wsgi", "tasks", "generate",
        "--date", str(day), "--batch-size", str(batch_size),
    ]  # fmt: skip
    began = time.perf_counter()
    completed = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, check=False
    )
    seconds = time.perf_counter() - began
    output = completed.stdout.decode()
    if completed.returncode != 0:
        raise SystemExit(f"flask tasks generate failed:\n{output}")
    steps = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] in tasks.STEPS and parts[2] == "s":
            steps[parts[0]] = (float(parts[1]), int(parts[3].replace(",", "")))
    return steps, seconds, output


def _connect(url: str) -> Any:
    parsed = make_url(url)
    return benchdb.connect_server(parsed, database=parsed.database)


def _scalar(url: str, sql: str) -> int:
    try:
        connection = _connect(url)
    except Exception:
        return 0
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            row = cursor.fetchone()
            return int(row[0]) if row and row[0] is not None else 0
    except Exception:
        return 0
    finally:
        connection.close()


def _execute(url: str, *statements: str) -> None:
    connection = _connect(url)
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
        connection.commit()
    finally:
        connection.close()


if __name__ == "__main__":
    raise SystemExit(main())
