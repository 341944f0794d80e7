"""Benchmark (issue 12): the shopper home screen vs. the cheapest request of the same gunicorn server.

    .venv/bin/python scripts/bench/home.py [--seconds 20] [--clients 32] [--rounds 3]
        [--database-url mysql+pymysql://root@127.0.0.1:3306/mallmember_bench]

A home screen makes three calls: `GET /api/mp/v1/me`, `/me/points` and `/me/coupons`, each screen as one
of `--members` seeded shoppers (welcome points in the ledger, two coupons each) with a real mini-program
token. The baseline is `GET /bench/ping`, a plain Flask route added only by the benchmark's WSGI entry
point (bench_wsgi.py) to the same app on the same gunicorn server (gthread), which returns `{"ok": true}`.
Both sides are driven by wrk (or Python threads if wrk is missing) with `--clients` keep-alive
connections, alternating over `--rounds` rounds after a warm-up each. The database is DROPPED and
recreated first. Target: home calls/s >= 0.25 x ping req/s (median of the rounds' ratios).
See scripts/bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import benchdb  # noqa: E402
import cpu  # noqa: E402
import harness  # noqa: E402
import loadgen  # noqa: E402
import results  # noqa: E402
from flask import Flask  # noqa: E402
from harness import log  # noqa: E402
from loadgen import Measurement  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.db import transaction  # noqa: E402
from app.mall_time import MallTime  # noqa: E402
from app.models import CouponSource  # noqa: E402
from app.services import coupons  # noqa: E402

# No issue states a figure for the home screen: a home call may cost up to four pings (a token check,
# one short transaction of two or three indexed reads, a marshmallow dump) and still keep up.
TARGET_RATIO = 0.25
HOME_PATHS = ("/api/mp/v1/me", "/api/mp/v1/me/points", "/api/mp/v1/me/coupons")
PING_PATH = "/bench/ping"
COUPONS_PER_MEMBER = 2
QUICK = {"seconds": 2, "warmup": 1, "rounds": 1, "members": 200}


@dataclass(frozen=True)
class Options:
    seconds: int
    warmup: int
    clients: int
    rounds: int
    members: int
    workers: int
    threads: int
    loadgen: str
    database_url: str
    json: Path | None
    quick: bool


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=20, help="measured time per side (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured warm-up per side (default 3)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections (default 32)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="ping and home alternate this many times (default 3)"
    )
    parser.add_argument("--members", type=int, default=2000, help="shoppers to seed (default 2000)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (default 2)")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker (default 8)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk if installed, else Python http.client threads",
    )
    parser.add_argument(
        "--database-url",
        default=benchdb.DEFAULT_DATABASE_URL,
        help="MariaDB/MySQL URL; the database in it is dropped and recreated",
    )
    results.add_suite_options(parser, QUICK)
    args = results.parse_with_quick(parser, argv, QUICK)
    for name in ("seconds", "clients", "rounds", "members"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    if make_url(args.database_url).get_backend_name() not in {"mysql", "mariadb"}:
        parser.error("--database-url must be a MySQL/MariaDB URL")
    return Options(**vars(args))


@dataclass(frozen=True)
class Side:
    name: str
    measurement: Measurement
    cpu: cpu.CpuUse


def seed_coupons(app: Flask, member_ids: range) -> None:
    """COUPONS_PER_MEMBER available coupons for every member, issued as a campaign would."""
    tz = app.extensions["mallmember"].mall_tz
    at = MallTime(datetime.now(UTC), tz)
    for number in range(COUPONS_PER_MEMBER):
        template_id = benchdb.create_flash_template(app, stock=len(member_ids), name=f"首页券{number + 1}")
        with app.app_context(), transaction() as session:
            for member_id in member_ids:
                issued = coupons.issue_by_system(
                    session,
                    template_id,
                    member_id,
                    source=CouponSource.CAMPAIGN,
                    key=f"bench-home-{number}-{member_id}",
                    at=at,
                )
                if issued is None:
                    raise SystemExit(f"could not issue a coupon of template {template_id}")


def check_answers(base_url: str, token: str) -> list[str]:
    """What is wrong with one shopper's home screen and the ping (empty if nothing): each call answers
    200 with the member's own data, so the load measures real answers, not errors."""
    problems = []
    bodies: dict[str, Any] = {}
    for path, headers in [
        *((path, {"Authorization": f"Bearer {token}"}) for path in HOME_PATHS),
        (PING_PATH, {}),
    ]:
        request = urllib.request.Request(base_url + path, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                bodies[path] = json.loads(response.read())
        except Exception as exc:  # an HTTP error or a bad body is what this check reports
            problems.append(f"GET {path}: {exc}")
    me, summary, mine = (bodies.get(path) for path in HOME_PATHS)
    if me is not None and not me.get("points_balance"):
        problems.append(f"GET /me: no points balance in {me}")
    if summary is not None and summary.get("balance") != (me or {}).get("points_balance"):
        problems.append(f"GET /me/points: balance {summary.get('balance')} differs from /me's")
    if mine is not None and len(mine) != COUPONS_PER_MEMBER:
        problems.append(f"GET /me/coupons: {len(mine)} coupons, expected {COUPONS_PER_MEMBER}")
    if bodies.get(PING_PATH, {"ok": True}) != {"ok": True}:
        problems.append(f"GET {PING_PATH}: {bodies[PING_PATH]}")
    return problems


def measured_side(name: str, options: Options, run: Callable[[int], Measurement], meter: cpu.Meter) -> Side:
    if options.warmup:
        log(f"{name}: warming up for {options.warmup} s")
        run(options.warmup)
    log(f"{name}: measuring {options.clients} connections for {options.seconds} s")
    sampler = cpu.CpuSampler(meter)
    result = run(options.seconds)
    return Side(name, result, sampler.stop())


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    version = harness.ensure_mariadb(options.database_url)
    use_wrk = options.loadgen == "wrk" or (options.loadgen == "auto" and loadgen.wrk_available())
    if use_wrk and not loadgen.wrk_available():
        raise SystemExit("wrk is not installed: apt-get install -y wrk (or use --loadgen python)")

    log(f"recreating {make_url(options.database_url).database} on MariaDB {version}, migrating, seeding")
    benchdb.recreate_database(options.database_url)
    app = benchdb.build_app(options.database_url)
    mall = benchdb.seed(app, member_count=options.members)
    seed_coupons(app, mall.member_ids)
    tokens = benchdb.shopper_tokens(app, benchdb.seed_shoppers(app, mall))
    secret_key = benchdb.bench_config(options.database_url).SECRET_KEY
    database_meter = harness.database_meter(options.database_url)

    load_before = os.getloadavg()[0]
    rounds: list[tuple[Side, Side]] = []
    with (
        tempfile.NamedTemporaryFile("w", prefix="bench-tokens-", suffix=".txt") as token_file,
        harness.gunicorn(
            options.database_url,
            workers=options.workers,
            threads=options.threads,
            secret_key=secret_key,
            with_ping=True,
        ) as server,
    ):
        token_file.write("\n".join(tokens) + "\n")
        token_file.flush()
        problems = check_answers(server.base_url, tokens[0])
        for problem in problems:
            log(f"check: {problem}")

        def runner(paths: Sequence[str], with_tokens: bool) -> Callable[[int], Measurement]:
            def run(seconds: int) -> Measurement:
                if use_wrk:
                    return loadgen.run_wrk_get(
                        server.base_url,
                        list(paths),
                        Path(token_file.name) if with_tokens else None,
                        clients=options.clients,
                        seconds=seconds,
                    )
                return loadgen.run_python_get(
                    "127.0.0.1",
                    server.port,
                    list(paths),
                    tokens if with_tokens else [],
                    clients=options.clients,
                    seconds=seconds,
                )

            return run

        meter = harness.app_cpu_meter(server.pid, database_meter, use_wrk=use_wrk)
        for number in range(1, options.rounds + 1):
            log(f"round {number} of {options.rounds}")
            ping = measured_side("ping", options, runner([PING_PATH], with_tokens=False), meter)
            home = measured_side("home", options, runner(HOME_PATHS, with_tokens=True), meter)
            rounds.append((home, ping))
        had_500s = server.report_unhandled_errors("home and ping (incl. warm-up)")

    driver = "wrk, 1 thread" if use_wrk else "Python http.client threads, sharing the cores"
    print()
    print(
        f"home screen (GET {', '.join(HOME_PATHS)}; {options.members} shoppers, a new one every three calls) "
        f"vs GET {PING_PATH}; {options.clients} connections, {options.seconds} s per side after "
        f"{options.warmup} s warm-up; gunicorn gthread {options.workers} workers x "
        f"{options.threads} threads; load: {driver}"
    )
    print(
        f"{os.cpu_count()} cores; MariaDB {version}; "
        f"load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )
    ratio = print_table(rounds)
    errors = sum(side.measurement.errors for both in rounds for side in both)
    ok = not problems and not errors and not had_500s
    checked = "each call 200 with the shopper's own data" if not problems else "WRONG"
    print(f"answers checked: {checked}")
    home_rate = statistics.median(home.measurement.per_second for home, _ in rounds)
    results.write_json(
        options.json,
        "home",
        [
            results.Figure(
                "shopper home screen (me + points + coupons) vs ping",
                home_rate,
                statistics.median(ping.measurement.per_second for _, ping in rounds),
                "req/s",
                f"ratio >= {TARGET_RATIO:.2f}",
                ratio >= TARGET_RATIO,
                ratio,
                f"median of {len(rounds)} rounds, {options.clients} connections; "
                f"{home_rate / len(HOME_PATHS):,.1f} home screens/s; the ratio is the median of the "
                "rounds' ratios",
            )
        ],
        ok=ok,
        settings={
            "clients": options.clients,
            "seconds": options.seconds,
            "rounds": options.rounds,
            "members": options.members,
            "load": driver,
        },
    )
    return 0 if ok else 1


def print_table(rounds: list[tuple[Side, Side]]) -> float:
    """The rounds, the median ratio against the target, CPU per request; returns the median ratio."""
    print(
        f"{'round':<6}{'side':<16}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'ratio':>8}"
    )
    ratios = []
    for number, (home, ping) in enumerate(rounds, start=1):
        ratio = home.measurement.per_second / ping.measurement.per_second if ping.measurement.seconds else 0.0
        ratios.append(ratio)
        for label, side in (("home (3 calls)", home), ("ping", ping)):
            m = side.measurement
            shown = f"{ratio:>8.2f}" if side is home else ""
            print(
                f"{number:<6}{label:<16}{m.requests:>9}{m.per_second:>9.1f}{m.p50_ms:>9.1f}{m.p99_ms:>9.1f}"
                f"{m.errors:>8}{shown}"
            )
    ratio = statistics.median(ratios)
    screens = statistics.median(home.measurement.per_second for home, _ in rounds) / len(HOME_PATHS)
    print(
        f"median ratio home calls/ping: {ratio:.2f} (target >= {TARGET_RATIO:.2f}: "
        f"{'met' if ratio >= TARGET_RATIO else 'MISSED'}); {screens:,.1f} home screens/s"
    )
    print("CPU ms per request (measured runs):")
    for number, both in enumerate(rounds, start=1):
        for label, side in zip(("home (3 calls)", "ping"), both, strict=True):
            spent = side.cpu.per_request_ms(side.measurement.requests)
            parts = ", ".join(f"{name} {ms:.2f}" for name, ms in spent.items())
            print(
                f"  {number} {label:<16}{parts}; cores busy {side.cpu.cores_busy():.2f}"
                f" (+ {side.cpu.other_cores_busy():.2f} by other processes)"
            )
    return ratio


if __name__ == "__main__":
    raise SystemExit(main())
