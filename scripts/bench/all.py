"""The benchmark suite (`make bench`): every benchmark in scripts/bench/, one after another, each as its
own process, then bench/REPORT.md (machine, date, commit, one table of figures against baselines and
targets, notes on each workload, how to rerun) and the table printed.

    .venv/bin/python scripts/bench/all.py              # the issues' sizes (about 40 minutes on 2 cores)
    .venv/bin/python scripts/bench/all.py --full       # and the nightly job on 10M members (hours)
    .venv/bin/python scripts/bench/all.py --quick      # a smoke run of the wiring, a few minutes
    .venv/bin/python scripts/bench/all.py --only home,earn

MariaDB must be running (and wrk installed, preferably: apt-get install -y wrk). Each benchmark DROPS and
recreates a database of its own, named after `--database-url`'s: mallmember_bench_suite_earn,
mallmember_bench_suite_home, ... A benchmark that fails (cannot run, its checks fail, times out) is
reported as such in the table; the others still run. Exit status 1 if any failed, 0 otherwise (missed
targets included).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import benchdb  # noqa: E402
import harness  # noqa: E402
import report  # noqa: E402
import results  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

DEFAULT_DATABASE_URL = "mysql+pymysql://root@127.0.0.1:3306/mallmember_bench_suite"
DEFAULT_REPORT = PROJECT_ROOT / "bench" / "REPORT.md"
DEFAULT_TIMEOUT = 6 * 3600


@dataclass(frozen=True)
class Plan:
    quick: bool
    full: bool
    database_url: str  # the databases' common stem
    redis_url: str

    def database(self, name: str) -> str:
        """The URL of the benchmark `name`'s own database."""
        url = make_url(self.database_url)
        return url.set(database=f"{url.database}_{name}").render_as_string(hide_password=False)

    @property
    def mode(self) -> str:
        return "quick" if self.quick else "full" if self.full else "default"


@dataclass(frozen=True)
class Bench:
    name: str
    script: str
    title: str
    note: str
    arguments: Callable[[Plan], list[str]]
    full_only: bool = False


def _sized(plan: Plan, *arguments: str) -> list[str]:
    return [*arguments, "--quick"] if plan.quick else list(arguments)


BENCHES = [
    Bench(
        "earn",
        "earn.py",
        "Purchase crediting (earn.py)",
        "`POST /api/staff/v1/purchases` through gunicorn (2 workers × 8 threads) from 32 wrk connections, "
        "alternating with the same ledger work as raw PyMySQL transactions (15 statements, same lock "
        "order) over 3 rounds of 20 s; the ledger must verify clean after each side. Targets: ratio "
        "≥ 0.40, p99 < 50 ms, measured with the clients pacing 150 req/s in all (at saturation "
        "the p99 is queueing: see scripts/bench/README.md).",
        lambda plan: _sized(plan, "--database-url", plan.database("earn")),
    ),
    Bench(
        "flash_claim",
        "flash_claim.py",
        "Flash coupon claim (flash_claim.py)",
        "2,000 claims of one template (100 in stock, one per member) from 200 connections, each as a "
        "random shopper, against the same claims as raw conditional UPDATEs; 3 rounds; nothing may be "
        "oversold and the coupon and points invariants must hold. Target (issue 5): ≥ 1,500 handled "
        "claims/s on 2 cores; the ratio is shown for scale. The app uses Redis (`--redis-url`).",
        lambda plan: _sized(
            plan, "--database-url", plan.database("flash_claim"), "--redis-url", plan.redis_url
        ),
    ),
    Bench(
        "home",
        "home.py",
        "Shopper home screen (home.py)",
        "`GET /api/mp/v1/me`, `/me/points` and `/me/coupons` (the three calls a home screen makes) with "
        "real mini-program tokens of 2,000 shoppers, against `GET /bench/ping` (a plain Flask route the "
        "benchmark's WSGI entry point adds) on the same gunicorn server, 32 wrk connections, 3 rounds. "
        "No issue states a figure: the target, home calls/s ≥ 0.25 × ping req/s, lets a home call cost "
        "up to four bare Flask requests (a token check, one short read transaction, the JSON dump).",
        lambda plan: _sized(plan, "--database-url", plan.database("home")),
    ),
    Bench(
        "import",
        "import.py",
        "Purchase import from CSV (import.py)",
        "`flask import purchases` of a generated CSV (1M rows, 85 % by 100,000 members found by their "
        "phone's blind index) against `LOAD DATA LOCAL INFILE` of the same file into a copy of the "
        "table (which cannot look members up); every row is checked afterwards and the re-import must "
        "insert nothing. Targets (issue 10): time ≤ 2 × LOAD DATA, peak RSS < 300 MB.",
        lambda plan: _sized(plan, "--database-url", plan.database("import")),
    ),
    Bench(
        "nightly",
        "nightly.py",
        "Nightly job (nightly.py)",
        "`flask tags refresh` (statistics, RFM, lifecycle, 13 system + 5 rule tags, KPIs) on a mall "
        "generated by gen_data.py (1M members, 10M purchases), the first night and the ordinary next "
        "night, against the same steps as hand-written SQL; both sides must leave the same results. "
        "Targets (issue 7): the ordinary night ≤ 60 s and ≤ 1.5 × the SQL, the first night ≤ 1.5 × "
        "the SQL, peak RSS < 500 MB.",
        lambda plan: _sized(plan, "--database-url", plan.database("nightly")),
    ),
    Bench(
        "tasks",
        "tasks.py",
        "Advisor tasks and digests (tasks.py)",
        "`flask tasks generate` for 500 advisors on a copy of the nightly benchmark's mall (six rules: "
        "tag, segment and lifecycle triggers), from no tasks; then `flask push digests` through the "
        "outbox to the WeCom sandbox, exactly one digest per advisor, nothing sent twice. No baseline. "
        "Targets (issue 8): generation ≤ 20 s, push ≤ 5 s.",
        lambda plan: _sized(
            plan, "--copy-from", plan.database("nightly"), "--database-url", plan.database("tasks")
        ),
    ),
    Bench(
        "nightly_10m",
        "nightly.py",
        "Nightly job at 10M members (nightly.py, --full only)",
        "The nightly benchmark on 10M members and 100M purchases (generation alone takes about an hour "
        "and needs tens of GB of disk), with the same targets.",
        lambda plan: [
            "--members",
            "10000000",
            "--purchases",
            "100000000",
            "--database-url",
            plan.database("nightly_10m"),
        ],
        full_only=True,
    ),
]


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="every benchmark with --quick: a smoke run")
    sizes.add_argument("--full", action="store_true", help="also the nightly job on 10M members (hours)")
    parser.add_argument(
        "--only",
        type=lambda text: [name.strip() for name in text.split(",") if name.strip()],
        default=None,
        help=f"comma-separated benchmarks to run, of: {', '.join(bench.name for bench in BENCHES)}",
    )
    parser.add_argument(
        "--database-url",
        default=DEFAULT_DATABASE_URL,
        help="MariaDB URL whose database name is the stem of each benchmark's own database "
        "(<name>_earn, <name>_home, ...: each is DROPPED and recreated)",
    )
    parser.add_argument(
        "--redis-url",
        default=benchdb.DEFAULT_REDIS_URL,
        help=f"the flash claim benchmark's Redis, flushed first (default {benchdb.DEFAULT_REDIS_URL})",
    )
    parser.add_argument("--report", type=Path, default=DEFAULT_REPORT, help="where to write the report")
    parser.add_argument(
        "--timeout",
        type=int,
        default=DEFAULT_TIMEOUT,
        help=f"seconds after which a benchmark is stopped and reported failed (default {DEFAULT_TIMEOUT})",
    )
    args = parser.parse_args(argv)
    known = {bench.name for bench in BENCHES}
    if args.only and (unknown := set(args.only) - known):
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    if make_url(args.database_url).get_backend_name() not in {"mysql", "mariadb"}:
        parser.error("--database-url must be a MySQL/MariaDB URL")
    return args


def selected(plan: Plan, only: list[str] | None) -> list[Bench]:
    if only:
        return [bench for bench in BENCHES if bench.name in only]
    return [bench for bench in BENCHES if plan.full or not bench.full_only]


def run_bench(bench: Bench, plan: Plan, *, log_dir: Path, timeout: int) -> report.BenchRun:
    """Run one benchmark as a subprocess, its output echoed and logged; never raises for its failure."""
    with tempfile.TemporaryDirectory(prefix="bench-suite-") as scratch:
        json_path = Path(scratch) / f"{bench.name}.json"
        command = [sys.executable, str(BENCH_DIR / bench.script), *bench.arguments(plan)]
        shown = ["scripts/bench/" + bench.script, *map(hide_password, bench.arguments(plan))]
        harness.log(f"{bench.name}: {shlex.join(shown)}")
        stdout_log, stderr_log = log_dir / f"{bench.name}.log", log_dir / f"{bench.name}.stderr.log"
        began = time.perf_counter()
        with stdout_log.open("w", encoding="utf-8") as out, stderr_log.open("w", encoding="utf-8") as err:
            try:
                process = subprocess.Popen(
                    [*command, "--json", str(json_path)],
                    cwd=PROJECT_ROOT,
                    stdout=subprocess.PIPE,
                    stderr=err,
                    text=True,
                    start_new_session=True,  # its gunicorn, wrk and sandbox go with it on a timeout
                )
            except OSError as exc:
                return report.BenchRun(
                    bench.name, bench.title, bench.note, shown, None, 0.0, error=f"could not start: {exc}"
                )
            timed_out = threading.Event()

            def stop() -> None:
                timed_out.set()
                os.killpg(process.pid, signal.SIGTERM)

            timer = threading.Timer(timeout, stop)
            timer.start()
            printed = []
            try:
                assert process.stdout is not None
                for line in process.stdout:
                    print(f"[{bench.name}] {line}", end="", flush=True)
                    out.write(line)
                    printed.append(line.rstrip("\n"))
                exit_code = process.wait()
            finally:
                timer.cancel()
        seconds = time.perf_counter() - began
        error_lines = stderr_log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
        output = "\n".join(line for line in printed if not line.startswith("# ")).strip()
        tail = "\n".join((error_lines or printed)[-15:])
        if timed_out.is_set():
            return report.BenchRun(
                bench.name, bench.title, bench.note, shown, None, seconds,
                error=f"stopped after {timeout} s\n{tail}", output=output,
            )  # fmt: skip
        if json_path.exists():
            ok, figures, _ = results.read_json(json_path)
        else:
            ok, figures = None, []
        return report.BenchRun(
            bench.name, bench.title, bench.note, shown, exit_code, seconds, figures, ok,
            error=tail if exit_code or not ok else "", output=output,
        )  # fmt: skip


def hide_password(argument: str) -> str:
    """A database URL as the report may show it: its password masked."""
    if "://" not in argument or "@" not in argument:
        return argument
    try:
        return make_url(argument).render_as_string(hide_password=True)
    except Exception:  # not a URL after all
        return argument


def rerun_help() -> str:
    return "\n".join(
        [
            "make bench                      # this suite at the issues' sizes",
            "make bench BENCH_ARGS=--full    # and the nightly job on 10M members",
            "make bench BENCH_ARGS=--quick   # a smoke run (do not commit its report)",
            ".venv/bin/python scripts/bench/all.py --only home,earn",
            ".venv/bin/python scripts/bench/home.py --help   # one benchmark alone: scripts/bench/README.md",
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    plan = Plan(quick=args.quick, full=args.full, database_url=args.database_url, redis_url=args.redis_url)
    started = datetime.now(UTC)
    try:
        version = harness.ensure_mariadb(plan.database_url)
    except SystemExit as exc:  # every benchmark will fail and say why; the report still gets written
        harness.log(str(exc))
        version = "not reachable"
    machine = report.machine_info(version, started)
    log_dir = args.report.parent / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = [
        run_bench(bench, plan, log_dir=log_dir, timeout=args.timeout) for bench in selected(plan, args.only)
    ]
    arguments = argv if argv is not None else sys.argv[1:]
    command = shlex.join(["scripts/bench/all.py", *map(hide_password, arguments)])
    text = report.render(machine, runs, mode=plan.mode, command=command, rerun=rerun_help())
    args.report.write_text(text, encoding="utf-8")
    print()
    print("\n".join(report.table_rows(runs)))
    print(report.summary_line(runs))
    print(f"report: {args.report}; logs: {log_dir}/")
    return 0 if all(run.passed for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
