"""Benchmark (issue 10): importing a million historical purchases from CSV, app vs. LOAD DATA.

    .venv/bin/python scripts/bench/import.py [--rows 1000000] [--members 100000] [--batch-size N]
        [--database-url mysql+pymysql://root@127.0.0.1:3306/mallmember_bench_import] [--keep-file]

The database in the URL is DROPPED and recreated, migrated, and seeded with the demo stores and
`--members` members (phones sealed with the development keys, no ledger). A CSV of `--rows` purchases
(`store,receipt_no,amount,purchased_at,phone`; ~85 % by members, the rest with an empty phone) is
streamed to a temporary directory, then:

- app: `flask import purchases FILE --batch-size N` (the app's default unless given) as a subprocess
  (what an operator runs): wall time, peak RSS (from wait4) and CPU; then the same file again, which
  must insert nothing (re-import);
- baseline: `LOAD DATA LOCAL INFILE` of the same file into `purchases_baseline` (`CREATE TABLE ... LIKE
  purchases`: the same indexes and checks), store by code, amount in fen and UTC time computed in SET.
  It cannot compute the phone's HMAC blind index, so its purchases have no member (member_id NULL).

Checks after the app's run: every row is in `purchases` with the right member, store, amount and time
(count and checksums), no points earned. Exit status 1 if a check fails, not when a target is missed.
Targets: app time ≤ 2× the baseline's, peak RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent.parent
sys.path.insert(0, str(PROJECT_ROOT))
sys.path.insert(0, str(PROJECT_ROOT / "scripts"))

import benchdb  # noqa: E402
import cpu  # noqa: E402
import harness  # noqa: E402
import results  # noqa: E402
from gen_data import _raise_buffer_pool  # noqa: E402
from harness import log  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.db import bound_database  # noqa: E402
from app.demo_data import STORES  # noqa: E402
from app.services.import_purchases import PURCHASES_LOADER  # noqa: E402

DEFAULT_URL = "mysql+pymysql://root@127.0.0.1:3306/mallmember_bench_import"
TARGET_RATIO, TARGET_RSS_MB = 2.0, 300
QUICK = {"rows": 5_000, "members": 1_000}
MEMBER_SHARE = 0.85
HEADER = "store,receipt_no,amount,purchased_at,phone\n"
BASELINE_TABLE = "purchases_baseline"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument(
        "--batch-size", type=int, help="passed to flask import purchases (default: the app's, 10,000)"
    )
    parser.add_argument("--keep-file", action="store_true", help="keep the CSV (its path is printed)")
    parser.add_argument("--seed", type=int, default=10)
    results.add_suite_options(parser, QUICK)
    args = results.parse_with_quick(parser, argv, QUICK)
    if args.members < 1 or args.rows < 1:
        parser.error("--rows and --members must be at least 1")
    args.batch_size = args.batch_size or PURCHASES_LOADER.batch_size
    url = args.database_url
    version = harness.ensure_mariadb(url)
    harness.compile_project()

    began = time.perf_counter()
    log(f"recreating {make_url(url).database}; seeding {len(STORES)} stores and {args.members:,} members")
    benchdb.recreate_database(url)
    app = benchdb.build_app(url)
    mall = benchdb.seed(app, member_count=args.members, welcome_points=False)
    with app.app_context():
        _raise_buffer_pool(bound_database().engine)
    log(f"seeded in {time.perf_counter() - began:.1f} s")

    directory = Path(tempfile.mkdtemp(prefix="bench-import-"))
    try:
        path = directory / "purchases.csv"
        began = time.perf_counter()
        expected = write_csv(
            path,
            rows=args.rows,
            members=args.members,
            first_member_id=mall.member_ids[0],
            tz=app.extensions["mallmember"].mall_tz,
            seed=args.seed,
        )
        size_mb = path.stat().st_size / 2**20
        log(f"wrote {path} ({expected.rows:,} rows, {size_mb:.0f} MB) in {time.perf_counter() - began:.1f} s")

        startup = measure(_app_command("--help"), url)
        log(f"app start-up (flask --app wsgi import purchases --help): {startup.seconds:.2f} s")

        harness.settle_innodb(url)
        sizing = ["--batch-size", str(args.batch_size)]
        log(f"app: flask import purchases {' '.join(sizing)}")
        first = measure(_app_command(str(path), *sizing, "--no-progress"), url)
        first_counts = purchase_counts(url)
        log(f"app: {first.seconds:.1f} s, peak RSS {first.peak_rss_mb or 0:.0f} MB, exit {first.status}")
        problems = first.failure("import") + verify(url, expected)
        problems += job_problems(url, "import", created=expected.rows, unchanged=0)

        harness.settle_innodb(url)
        log("app: the same file again (re-import)")
        again = measure(_app_command(str(path), *sizing, "--no-progress"), url)
        again_inserted = purchase_counts(url).rows - first_counts.rows
        log(f"app re-import: {again.seconds:.1f} s, {again_inserted:,} rows inserted, exit {again.status}")
        problems += again.failure("re-import")
        problems += job_problems(url, "re-import", created=0, unchanged=expected.rows)
        if again_inserted:
            problems.append(f"re-import inserted {again_inserted:,} rows (expected 0)")

        harness.settle_innodb(url)
        log(f"baseline: LOAD DATA LOCAL INFILE into {BASELINE_TABLE}")
        baseline = load_data(url, path, app.extensions["mallmember"].mall_tz)
        baseline_counts = purchase_counts(url, table=BASELINE_TABLE)
        baseline_again = load_data(url, path, app.extensions["mallmember"].mall_tz)
        baseline_again_inserted = purchase_counts(url, table=BASELINE_TABLE).rows - baseline_counts.rows
        if baseline_counts.rows != expected.rows or baseline_counts.amount_fen != expected.amount_fen:
            problems.append(
                f"baseline loaded {baseline_counts.rows:,} rows / {baseline_counts.amount_fen:,} fen, "
                f"expected {expected.rows:,} / {expected.amount_fen:,}"
            )
        if args.keep_file:
            log(f"CSV kept at {path}")
    finally:
        if not args.keep_file:
            shutil.rmtree(directory, ignore_errors=True)

    ratio = first.seconds / baseline.seconds if baseline.seconds else 0.0
    rss = first.peak_rss_mb or 0.0
    print()
    print(
        f"import of {expected.rows:,} purchases ({expected.member_rows:,} by members, the rest without a "
        f"phone) over {len(STORES)} stores and {args.members:,} members; {size_mb:.0f} MB of CSV"
    )
    print(
        f"MariaDB {version}, buffer pool {server_gib(url, 'innodb_buffer_pool_size')} GiB; "
        f"{os.cpu_count()} cores; batch size {args.batch_size:,}; app start-up {startup.seconds:.2f} s"
    )
    print(
        f"{'side':<44}{'inserted':>11}{'seconds':>9}{'rows/s':>10}{'peak RSS MB':>13}"
        f"{'CPU s: client':>15}{'MariaDB':>9}{'others, cores':>15}"
    )
    _row("app: flask import purchases", first_counts.rows, first)
    _row("app: same file again (re-import)", again_inserted, again)
    _row(f"baseline: LOAD DATA into {BASELINE_TABLE}", baseline_counts.rows, baseline)
    _row("baseline: same file again (IGNORE)", baseline_again_inserted, baseline_again)
    print(
        "baseline: member_id left NULL (LOAD DATA cannot compute the phone's HMAC blind index); "
        "foreign keys are not copied by CREATE TABLE ... LIKE"
    )
    print(
        f"targets: time ratio app/baseline {ratio:.2f} <= {TARGET_RATIO}: {_verdict(ratio <= TARGET_RATIO)}; "
        f"peak RSS {rss:.0f} MB < {TARGET_RSS_MB} MB: {_verdict(rss < TARGET_RSS_MB)}"
    )
    summary = [line for line in first.stdout.splitlines() if line.strip()]
    if summary:
        print("app's summary: " + " | ".join(summary[-6:]))
    size = f"{results.short_count(expected.rows)} rows, {results.short_count(args.members)} members"
    results.write_json(
        args.json,
        "import",
        [
            results.Figure.compared(
                f"purchase import from CSV ({size}): time",
                first.seconds,
                baseline.seconds,
                "s",
                f"ratio <= {TARGET_RATIO}",
                ratio <= TARGET_RATIO,
                f"app: the whole `flask import purchases` command (start-up {startup.seconds:.1f} s); "
                "baseline: LOAD DATA, without the member lookup; re-import "
                f"{again.seconds:.1f} s",
            ),
            results.Figure(
                f"purchase import from CSV ({size}): peak RSS",
                rss,
                None,
                "MB",
                f"< {TARGET_RSS_MB} MB",
                rss < TARGET_RSS_MB,
            ),
        ],
        ok=not problems,
        settings={"rows": expected.rows, "members": args.members, "batch_size": args.batch_size},
    )
    if problems:
        print("verification: FAILED")
        for problem in problems:
            print(f"  {problem}")
        return 1
    print(
        "verification: every row imported with its member, store, amount and UTC time "
        "(count and checksums); no points earned; the re-import inserted nothing; both jobs finished "
        "with those counts and no issues"
    )
    return 0


@dataclass
class Expected:
    """What the CSV holds, to check what was imported: counts and checksums."""

    rows: int = 0
    member_rows: int = 0
    amount_fen: int = 0
    member_id_sum: int = 0
    epoch_sum: int = 0  # purchased_at in UTC, seconds since 1970
    per_store: dict[str, int] = field(default_factory=dict)


def write_csv(
    path: Path, *, rows: int, members: int, first_member_id: int, tz: ZoneInfo, seed: int
) -> Expected:
    """`rows` purchases in the past year, in opening hours, mall local time; streamed in chunks.

    Receipt numbers are unique across the file, so every row is a new purchase."""
    rng = random.Random(seed)
    codes = [code for code, *_ in STORES]
    expected = Expected(per_store=dict.fromkeys(codes, 0))
    today = datetime.now(tz).date()
    # Local midnights of the last 365 days, and their UTC epoch.
    days = [today - timedelta(days=offset) for offset in range(1, 366)]
    midnights = [
        (day.isoformat(), int(datetime(day.year, day.month, day.day, tzinfo=tz).timestamp())) for day in days
    ]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER)
        chunk: list[str] = []
        for n in range(rows):
            code = codes[rng.randrange(len(codes))]
            fen = int(1_000 * 80 ** rng.random())  # ¥10 to ¥800, log-uniform
            day, midnight = midnights[rng.randrange(len(midnights))]
            second = 10 * 3600 + rng.randrange(12 * 3600)
            hh, rest = divmod(second, 3600)
            mm, ss = divmod(rest, 60)
            phone = ""
            if rng.random() < MEMBER_SHARE:
                k = rng.randrange(members)
                phone = benchdb.member_phone(k)
                expected.member_rows += 1
                expected.member_id_sum += first_member_id + k
            chunk.append(
                f"{code},IMP{n:09d},{fen // 100}.{fen % 100:02d},{day} {hh:02d}:{mm:02d}:{ss:02d},{phone}\n"
            )
            expected.rows += 1
            expected.amount_fen += fen
            expected.epoch_sum += midnight + second
            expected.per_store[code] += 1
            if len(chunk) == 10_000:
                out.writelines(chunk)
                chunk.clear()
        out.writelines(chunk)
    return expected


@dataclass(frozen=True)
class Run:
    command: list[str]
    seconds: float
    status: int
    peak_rss_mb: float | None  # None for the baseline: the work is in the server
    client_cpu: float  # user + system seconds of the child (or of this process for the baseline)
    database_cpu: float | None
    machine_cpu: float  # busy CPU seconds of the whole machine meanwhile, all processes
    stdout: str = ""
    stderr: str = ""

    def failure(self, label: str) -> list[str]:
        if self.status == 0:
            return []
        tail = (self.stderr or self.stdout).strip().splitlines()[-15:]
        return [f"{label}: {' '.join(self.command[-6:])} exited with {self.status}", *tail]

    @property
    def others_cores(self) -> float:
        """Cores that other processes than the client and the database took meanwhile (shared machine)."""
        ours = self.client_cpu + (self.database_cpu or 0.0)
        return max(self.machine_cpu - ours, 0.0) / self.seconds if self.seconds else 0.0


def _app_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "flask", "--app", "wsgi", "import", "purchases", *arguments]


def measure(command: list[str], database_url: str) -> Run:
    """Run `command` in the project with the app's environment; wall time, exit status, peak RSS and
    CPU of the child (wait4), and the database server's CPU meanwhile."""
    env = {**os.environ, "DATABASE_URL": database_url, "APP_ENV": "development", "REDIS_URL": ""}
    meter = harness.database_meter(database_url)
    database_before = {name: read() for name, read in meter.items()}
    machine_before = cpu.machine_seconds()
    with tempfile.TemporaryFile() as stderr:
        began = time.perf_counter()
        process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=stderr)
        assert process.stdout is not None
        output = process.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - began
        machine_cpu = cpu.machine_seconds() - machine_before
        process.returncode = os.waitstatus_to_exitcode(status)
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    database_cpu = sum(read() - database_before[name] for name, read in meter.items()) if meter else None
    return Run(
        command=command,
        seconds=seconds,
        status=process.returncode,
        peak_rss_mb=usage.ru_maxrss / 1024,
        client_cpu=usage.ru_utime + usage.ru_stime,
        database_cpu=database_cpu,
        machine_cpu=machine_cpu,
        stdout=output,
        stderr=errors,
    )


def load_data(database_url: str, path: Path, tz: ZoneInfo) -> Run:
    """The baseline: the same file with `LOAD DATA LOCAL INFILE ... IGNORE` (a receipt already there is
    skipped, as the app's import does) into a table made `LIKE purchases`, in one transaction."""
    # Asia/Shanghai has had no daylight saving since 1991: local time is UTC + 8 h all year. A fixed
    # offset needs no time zone tables in the server (CONVERT_TZ would).
    offset = int(datetime.now(tz).utcoffset().total_seconds())  # type: ignore[union-attr]
    url = make_url(database_url)
    connection = benchdb.connect_server(url, database=url.database, local_infile=True)
    meter = harness.database_meter(database_url)
    database_before = {name: read() for name, read in meter.items()}
    own_before = cpu.own_seconds()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} LIKE purchases")
            connection.commit()
            began, machine_before = time.perf_counter(), cpu.machine_seconds()
            cursor.execute(
                f"LOAD DATA LOCAL INFILE %s IGNORE INTO TABLE {BASELINE_TABLE} CHARACTER SET utf8mb4"
                " FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' LINES TERMINATED BY '\\n'"
                " IGNORE 1 LINES (@store, receipt_no, @amount, @at, @phone)"
                " SET store_id = (SELECT id FROM stores WHERE code = @store COLLATE utf8mb4_unicode_ci),"
                " amount_fen = ROUND(@amount * 100), purchased_at = @at - INTERVAL %s SECOND,"
                " member_id = NULL, refunded_fen = 0, points_earned = 0, points_clawed_back = 0,"
                " created_at = UTC_TIMESTAMP()",
                (str(path), offset),
            )
            connection.commit()
            seconds = time.perf_counter() - began
            machine_cpu = cpu.machine_seconds() - machine_before
    finally:
        connection.close()
    database_cpu = sum(read() - database_before[name] for name, read in meter.items()) if meter else None
    return Run(
        command=["LOAD DATA"],
        seconds=seconds,
        status=0,
        peak_rss_mb=None,
        client_cpu=cpu.own_seconds() - own_before,
        database_cpu=database_cpu,
        machine_cpu=machine_cpu,
    )


@dataclass(frozen=True)
class Counts:
    rows: int
    member_rows: int
    amount_fen: int
    member_id_sum: int
    epoch_sum: int
    points_earned: int


def purchase_counts(database_url: str, *, table: str = "purchases") -> Counts:
    url = make_url(database_url)
    connection = benchdb.connect_server(url, database=url.database)
    try:
        with connection.cursor() as cursor:
            # purchased_at holds UTC: read it as UTC whatever the server's own zone.
            cursor.execute("SET time_zone = '+00:00'")
            cursor.execute(
                "SELECT COUNT(*), COUNT(member_id), COALESCE(SUM(amount_fen), 0),"
                " COALESCE(SUM(member_id), 0), COALESCE(SUM(UNIX_TIMESTAMP(purchased_at)), 0),"
                f" COALESCE(SUM(points_earned), 0) FROM {table}"
            )
            return Counts(*(int(value) for value in cursor.fetchone()))
    finally:
        connection.close()


def verify(database_url: str, expected: Expected) -> list[str]:
    """What is wrong with the app's import, compared with what the CSV holds (empty if nothing)."""
    got = purchase_counts(database_url)
    problems = []
    for name, want, have in [
        ("purchases", expected.rows, got.rows),
        ("purchases with a member", expected.member_rows, got.member_rows),
        ("sum of amount_fen", expected.amount_fen, got.amount_fen),
        ("sum of member_id (the members found by phone)", expected.member_id_sum, got.member_id_sum),
        ("sum of purchased_at as UTC epoch seconds", expected.epoch_sum, got.epoch_sum),
        ("points earned", 0, got.points_earned),
    ]:
        if want != have:
            problems.append(f"{name}: {have:,} in the database, expected {want:,}")
    url = make_url(database_url)
    connection = benchdb.connect_server(url, database=url.database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT s.code, COUNT(*) FROM purchases p JOIN stores s ON s.id = p.store_id GROUP BY s.code"
            )
            per_store = {code: int(count) for code, count in cursor.fetchall()}
            cursor.execute("SELECT COUNT(*) FROM points_entries")
            (entries,) = cursor.fetchone()
    finally:
        connection.close()
    if per_store != {code: count for code, count in expected.per_store.items() if count}:
        problems.append(f"purchases per store differ: {per_store} vs {expected.per_store}")
    if entries:
        problems.append(f"{entries:,} points entries written (historical purchases earn no points)")
    return problems


def job_problems(database_url: str, label: str, *, created: int, unchanged: int) -> list[str]:
    """What is wrong with the latest job's record (import_jobs), given what it should have counted."""
    url = make_url(database_url)
    connection = benchdb.connect_server(url, database=url.database)
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT status, created, unchanged, rejected, conflicts FROM import_jobs"
                " ORDER BY id DESC LIMIT 1"
            )
            row = cursor.fetchone()
            cursor.execute("SELECT COUNT(*) FROM import_issues")
            (issues,) = cursor.fetchone()
    finally:
        connection.close()
    if row is None:
        return [f"{label}: no row in import_jobs"]
    want = ("finished", created, unchanged, 0, 0)
    if tuple(row) != want or issues:
        return [
            f"{label}: import_jobs says (status, created, unchanged, rejected, conflicts) = {tuple(row)}, "
            f"expected {want}; {issues:,} rows in import_issues"
        ]
    return []


def server_gib(database_url: str, name: str) -> str:
    value = harness.server_variable(database_url, name)
    return f"{int(value) / 2**30:g}" if value else "?"


def _row(label: str, inserted: int, run: Run) -> None:
    rate = inserted / run.seconds if run.seconds and inserted else 0
    database = f"{run.database_cpu:9.1f}" if run.database_cpu is not None else f"{'?':>9}"
    rss = f"{run.peak_rss_mb:13.0f}" if run.peak_rss_mb is not None else f"{'-':>13}"
    print(
        f"{label:<44}{inserted:>11,}{run.seconds:>9.1f}{rate:>10,.0f}{rss}{run.client_cpu:>15.1f}{database}"
        f"{run.others_cores:>15.2f}"
    )


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


if __name__ == "__main__":
    raise SystemExit(main())
