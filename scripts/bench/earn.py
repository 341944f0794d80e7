"""Benchmark: staff purchase crediting through the full HTTP stack vs. the same ledger work in raw PyMySQL.

    .venv/bin/python scripts/bench/earn.py [--seconds 20] [--clients 32]
        [--database-url mysql+pymysql://root@127.0.0.1:3306/mallmember_bench]

Creates the database afresh (it is DROPPED first), migrates and seeds it, serves the app with gunicorn
(gthread) and drives `POST /api/staff/v1/purchases` with wrk (or Python threads if wrk is missing); then
runs the raw-PyMySQL baseline with the same number of concurrent connections. Each side starts from the
same freshly seeded state, warms up, is measured for the same time, and must leave a clean ledger.
See scripts/bench/README.md for what the figures mean.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import baseline  # noqa: E402
import benchdb  # noqa: E402
import cpu  # noqa: E402
import harness  # noqa: E402
import loadgen  # noqa: E402
import results  # noqa: E402
from flask import Flask  # noqa: E402
from harness import ensure_mariadb, gunicorn, log  # noqa: E402
from loadgen import Measurement, Traffic  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

TARGET_RATIO = 0.40
TARGET_P99_MS = 50.0
QUICK = {"seconds": 2, "warmup": 1, "rounds": 1, "members": 200}


@dataclass(frozen=True)
class Options:
    seconds: int
    warmup: int
    clients: int
    database_url: str
    members: int
    workers: int
    threads: int
    loadgen: str
    empty_ledger: bool
    paced_rate: int
    rounds: int
    json: Path | None
    quick: bool


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=20, help="measured time per side (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured warm-up per side (default 3)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients per side (default 32)")
    parser.add_argument(
        "--database-url",
        default=benchdb.DEFAULT_DATABASE_URL,
        help="MariaDB/MySQL URL; the database in it is dropped and recreated",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="app and baseline alternate this many times (default 3)"
    )
    parser.add_argument("--members", type=int, default=2000, help="members to seed (default 2000)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk if installed, else Python http.client threads",
    )
    parser.add_argument(
        "--empty-ledger",
        action="store_true",
        help="seed members without welcome points (no ledger entries at all before the run)",
    )
    parser.add_argument(
        "--paced-rate",
        type=int,
        default=150,
        help="after the saturated app run, measure latency with the clients pausing between requests "
        "so that they offer this many req/s in all (wrk only; 0 skips it; default 150)",
    )
    results.add_suite_options(parser, QUICK)
    args = results.parse_with_quick(parser, argv, QUICK)
    if make_url(args.database_url).get_backend_name() not in {"mysql", "mariadb"}:
        parser.error("--database-url must be a MySQL/MariaDB URL")
    return Options(**vars(args))


@dataclass(frozen=True)
class Side:
    """One side's figures over its measured run (warm-up excluded)."""

    name: str
    measurement: Measurement
    cpu: cpu.CpuUse
    deadlocks: int | None
    ledger_problems: list[str]


def measured_side(
    name: str,
    app: Flask,
    mall: benchdb.Mall,
    options: Options,
    run: Callable[[int, str], Measurement],
    meter: cpu.Meter,
    *,
    round_no: int = 1,
) -> Side:
    """Freshly seeded state, a warm-up, the measured run (with the CPU it used), then the ledger check."""
    benchdb.reset_purchases(app, mall)
    if options.warmup:
        log(f"{name}: warming up for {options.warmup} s")
        run(options.warmup, f"{name[0].upper()}{round_no}W")
    log(f"{name}: measuring {options.clients} clients for {options.seconds} s")
    deadlocks_before = benchdb.innodb_deadlocks(app)
    sampler = cpu.CpuSampler(meter)
    result = run(options.seconds, f"{name[0].upper()}{round_no}")
    used = sampler.stop()
    benchdb.wait_until_idle(app)
    deadlocks_after = benchdb.innodb_deadlocks(app)
    problems = benchdb.ledger_problems(app)
    added = ", ".join(f"{table} {n}" for table, n in benchdb.rows_added(app, mall).items())
    state = "clean" if not problems else f"{len(problems)} PROBLEMS"
    log(f"{name}: ledger {state}; rows written incl. warm-up: {added}")
    for problem in problems[:20]:
        log(f"  {problem}")
    deadlocks = (
        deadlocks_after - deadlocks_before
        if deadlocks_before is not None and deadlocks_after is not None
        else None
    )
    return Side(name, result, used, deadlocks, problems)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    version = ensure_mariadb(options.database_url)
    use_wrk = options.loadgen == "wrk" or (options.loadgen == "auto" and loadgen.wrk_available())
    if use_wrk and not loadgen.wrk_available():
        raise SystemExit("wrk is not installed: apt-get install -y wrk (or use --loadgen python)")

    log(f"recreating {make_url(options.database_url).database} on MariaDB {version}, migrating, seeding")
    benchdb.recreate_database(options.database_url)
    app = benchdb.build_app(options.database_url)
    mall = benchdb.seed(app, member_count=options.members, welcome_points=not options.empty_ledger)
    token = benchdb.staff_token(app, mall.staff_id)
    traffic = Traffic(member_ids=mall.member_ids, store_ids=mall.store_ids)
    secret_key = benchdb.bench_config(options.database_url).SECRET_KEY
    database_meter = harness.database_meter(options.database_url)

    context = baseline.Context(
        url=make_url(options.database_url),
        staff_id=mall.staff_id,
        traffic=traffic,
        tz=app.extensions["mallmember"].mall_tz,
    )

    def baseline_run(seconds: int, prefix: str) -> Measurement:
        return baseline.run(context, clients=options.clients, seconds=seconds, receipt_prefix=prefix)

    baseline_meter: cpu.Meter = {"Python": cpu.own_seconds, **database_meter}

    load_before = os.getloadavg()[0]
    rounds: list[tuple[Side, Side]] = []
    paced: Measurement | None = None
    with gunicorn(
        options.database_url, workers=options.workers, threads=options.threads, secret_key=secret_key
    ) as server:

        def http_run(seconds: int, prefix: str) -> Measurement:
            if use_wrk:
                return loadgen.run_wrk(
                    server.base_url,
                    token,
                    traffic,
                    clients=options.clients,
                    seconds=seconds,
                    receipt_prefix=prefix,
                )
            return loadgen.run_python_client(
                "127.0.0.1",
                server.port,
                token,
                traffic,
                clients=options.clients,
                seconds=seconds,
                receipt_prefix=prefix,
            )

        app_meter = harness.app_cpu_meter(server.pid, database_meter, use_wrk=use_wrk)
        # Sides alternate, round after round: a slow spell of a shared machine then hits both
        # sides of some round instead of one side of the only round.
        for number in range(1, options.rounds + 1):
            log(f"round {number} of {options.rounds}")
            app_side = measured_side("app", app, mall, options, http_run, app_meter, round_no=number)
            base_side = measured_side(
                "baseline", app, mall, options, baseline_run, baseline_meter, round_no=number
            )
            rounds.append((app_side, base_side))
        if use_wrk and options.paced_rate:
            benchdb.reset_purchases(app, mall)
            log(f"app: {options.clients} clients offering {options.paced_rate} req/s for {options.seconds} s")
            paced = loadgen.run_wrk(
                server.base_url,
                token,
                traffic,
                clients=options.clients,
                seconds=options.seconds,
                receipt_prefix="P",
                offered_rate=options.paced_rate,
            )
            benchdb.wait_until_idle(app)
            paced_problems = benchdb.ledger_problems(app)
            log(f"app (paced): ledger {'clean' if not paced_problems else 'NOT CLEAN'}")
            if paced_problems:
                rounds.append((replace(rounds[-1][0], ledger_problems=paced_problems), rounds[-1][1]))
        server.report_unhandled_errors("app (incl. warm-up)")

    driver = "wrk, 1 thread" if use_wrk else "Python http.client threads, sharing the cores"
    print()
    print(
        f"{options.clients} clients, {options.seconds} s per side after {options.warmup} s warm-up; "
        f"gunicorn gthread {options.workers} workers x {options.threads} threads; load: {driver}"
    )
    print(
        f"{os.cpu_count()} cores; MariaDB {version}; {options.members} members; "
        f"load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )
    print_table(rounds)
    if paced is not None:
        print(
            f"app (HTTP) paced: {options.clients} clients pausing between requests, offering "
            f"{options.paced_rate} req/s: {paced.per_second:.1f} req/s, p50 {paced.p50_ms:.1f} ms, "
            f"p99 {paced.p99_ms:.1f} ms (target < {TARGET_P99_MS:.0f}: "
            f"{'met' if paced.p99_ms < TARGET_P99_MS else 'MISSED'}), errors {paced.errors}"
        )
    clean = not any(side.ledger_problems for both in rounds for side in both)
    print(f"points ledger after each side (verify_ledger): {'clean' if clean else 'NOT CLEAN'}")
    results.write_json(
        options.json,
        "earn",
        figures(rounds, paced, options),
        ok=clean,
        settings={
            "clients": options.clients,
            "seconds": options.seconds,
            "rounds": options.rounds,
            "members": options.members,
            "load": driver,
        },
    )
    return 0 if clean else 1


def figures(
    rounds: list[tuple[Side, Side]], paced: Measurement | None, options: Options
) -> list[results.Figure]:
    """The suite's lines: the median round's throughput against the baseline's, and the app's p99
    (paced when it was measured, else saturated)."""
    app_rate = statistics.median(app.measurement.per_second for app, _ in rounds)
    base_rate = statistics.median(base.measurement.per_second for _, base in rounds)
    ratio = statistics.median(_ratio(app, base) for app, base in rounds)
    throughput = results.Figure(
        "purchase crediting (earn), throughput",
        app_rate,
        base_rate,
        "req/s",
        f"ratio >= {TARGET_RATIO:.2f}",
        ratio >= TARGET_RATIO,
        ratio,
        f"median of {len(rounds)} rounds, {options.clients} clients; "
        "the ratio is the median of the rounds' ratios",
    )
    if paced is not None:
        latency = results.Figure(
            f"purchase crediting (earn), p99 at {options.paced_rate} req/s offered",
            paced.p99_ms,
            None,
            "ms",
            f"< {TARGET_P99_MS:.0f} ms",
            paced.p99_ms < TARGET_P99_MS,
            note=f"{paced.per_second:.1f} req/s served, p50 {paced.p50_ms:.1f} ms",
        )
    else:
        p99 = statistics.median(app.measurement.p99_ms for app, _ in rounds)
        latency = results.Figure(
            "purchase crediting (earn), p99 saturated",
            p99,
            None,
            "ms",
            f"< {TARGET_P99_MS:.0f} ms",
            p99 < TARGET_P99_MS,
            note="no paced run (wrk missing or --paced-rate 0): queueing at saturation, see the README",
        )
    return [throughput, latency]


def _ratio(app_side: Side, base_side: Side) -> float:
    base_rate = base_side.measurement.per_second
    return app_side.measurement.per_second / base_rate if base_rate else 0.0


def print_table(rounds: list[tuple[Side, Side]]) -> None:
    print(
        f"{'round':<6}{'side':<12}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'deadlocks':>11}{'ratio':>8}"
    )
    ratios = []
    for number, (app_side, base_side) in enumerate(rounds, start=1):
        base_rate = base_side.measurement.per_second
        ratio = app_side.measurement.per_second / base_rate if base_rate else 0.0
        ratios.append(ratio)
        for label, side in (("app (HTTP)", app_side), ("baseline", base_side)):
            result = side.measurement
            deadlocks = "?" if side.deadlocks is None else str(side.deadlocks)
            shown_ratio = f"{ratio:>8.2f}" if side is app_side else ""
            print(
                f"{number:<6}{label:<12}{result.requests:>9}{result.per_second:>9.1f}"
                f"{result.p50_ms:>9.1f}{result.p99_ms:>9.1f}{result.errors:>8}{deadlocks:>11}{shown_ratio}"
            )
    ratio = statistics.median(ratios)
    p99 = statistics.median(app.measurement.p99_ms for app, _ in rounds)
    print(
        f"median ratio app/baseline: {ratio:.2f}  (target >= {TARGET_RATIO:.2f}: "
        f"{'met' if ratio >= TARGET_RATIO else 'MISSED'})   "
        f"median app p99 (saturated): {p99:.1f} ms (target < {TARGET_P99_MS:.0f}: "
        f"{'met' if p99 < TARGET_P99_MS else 'MISSED'})"
    )
    print("CPU ms per request (measured runs):")
    for number, both in enumerate(rounds, start=1):
        for label, side in zip(("app (HTTP)", "baseline"), both, strict=True):
            spent = side.cpu.per_request_ms(side.measurement.requests)
            parts = ", ".join(f"{name} {ms:.2f}" for name, ms in spent.items())
            print(
                f"  {number} {label:<12}{parts}; cores busy {side.cpu.cores_busy():.2f}"
                f" (+ {side.cpu.other_cores_busy():.2f} by other processes)"
            )


if __name__ == "__main__":
    raise SystemExit(main())
