"""Benchmark (issue 5): a flash coupon claim, through the full HTTP stack vs. raw PyMySQL.

    .venv/bin/python scripts/bench/flash_claim.py [--requests 2000] [--clients 200] [--stock 100]
        [--database-url mysql+pymysql://root@127.0.0.1:3306/mallmember_bench]

Exactly `--requests` claims of one coupon template (`--stock` in stock, one per member) from `--clients`
concurrent clients, each claim as a random one of 2,000 seeded shoppers with a unique Idempotency-Key:
first `POST /api/mp/v1/coupon-templates/{id}/claims` through gunicorn (gthread) driven by wrk (or Python
threads if wrk is missing), then the same claims as raw PyMySQL transactions. The database is DROPPED
and recreated first. Nothing may be oversold, and the coupon and points invariants must hold after each
side. See scripts/bench/README.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import benchdb  # noqa: E402
import claim_baseline  # noqa: E402
import cpu  # noqa: E402
import harness  # noqa: E402
import loadgen  # noqa: E402
import redis  # noqa: E402
import results  # noqa: E402
from flask import Flask  # noqa: E402
from harness import log  # noqa: E402
from loadgen import CountedRun  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

TARGET_RATE = 1_500  # handled requests per second, on 2 cores
QUICK = {"requests": 200, "clients": 20, "stock": 20, "warmup": 40, "rounds": 1, "members": 200}


@dataclass(frozen=True)
class Options:
    requests: int
    clients: int
    stock: int
    warmup: int
    database_url: str
    members: int
    workers: int
    threads: int
    loadgen: str
    baseline_connections: int | None
    redis_url: str
    rounds: int
    json: Path | None
    quick: bool


def parse_args(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="claims per side (default 2000)")
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients per side (default 200)")
    parser.add_argument("--stock", type=int, default=100, help="coupons in stock (default 100)")
    parser.add_argument(
        "--warmup",
        type=int,
        default=400,
        help="unmeasured claims per side first, on a template of their own (default 400)",
    )
    parser.add_argument(
        "--database-url",
        default=benchdb.DEFAULT_DATABASE_URL,
        help="MariaDB/MySQL URL; the database in it is dropped and recreated",
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
        "--baseline-connections",
        type=int,
        default=None,
        help="connections the baseline's threads share (default: --clients, capped below max_connections)",
    )
    parser.add_argument(
        "--redis-url",
        default=benchdb.DEFAULT_REDIS_URL,
        help=f"the app's REDIS_URL, flushed first (default {benchdb.DEFAULT_REDIS_URL}; '' for none)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="app and baseline alternate this many times (default 3)"
    )
    results.add_suite_options(parser, QUICK)
    args = results.parse_with_quick(parser, argv, QUICK)
    if make_url(args.database_url).get_backend_name() not in {"mysql", "mariadb"}:
        parser.error("--database-url must be a MySQL/MariaDB URL")
    return Options(**vars(args))


@dataclass(frozen=True)
class Side:
    name: str
    run: CountedRun
    stock: benchdb.Stock
    cpu: cpu.CpuUse
    problems: list[str]


def measured_side(
    name: str,
    app: Flask,
    options: Options,
    run: Callable[[int, int, str], CountedRun],
    meter: cpu.Meter,
) -> Side:
    """A warm-up on a template of its own, then the measured claims on a fresh template, then the checks.

    `run(template_id, requests, key_prefix)` sends the claims."""
    if options.warmup:
        warm = benchdb.create_flash_template(app, stock=options.stock, name=f"{name} 预热券")
        log(f"{name}: warming up with {options.warmup} claims")
        run(warm, options.warmup, f"{name}-warm")
    template_id = benchdb.create_flash_template(app, stock=options.stock, name=f"{name} 秒杀券")
    log(f"{name}: {options.requests} claims of template {template_id} from {options.clients} clients")
    sampler = cpu.CpuSampler(meter)
    result = run(template_id, options.requests, f"{name}-flash")
    used = sampler.stop()
    stock = benchdb.template_stock(app, template_id)
    problems = [f"coupons: {p}" for p in benchdb.coupon_problems(app)]
    problems += [f"points: {p}" for p in benchdb.ledger_problems(app)]
    if stock.issued != result.count("issued"):
        problems.append(f"{result.count('issued')} claims answered 201 but {stock.issued} coupons exist")
    if stock.oversold:
        problems.append(f"OVERSOLD by {stock.oversold}")
    log(f"{name}: verify_coupons + verify_ledger: {'clean' if not problems else f'{len(problems)} PROBLEMS'}")
    for problem in problems[:20]:
        log(f"  {problem}")
    return Side(name, result, stock, used, problems)


def main(argv: list[str] | None = None) -> int:
    options = parse_args(argv)
    version = harness.ensure_mariadb(options.database_url)
    use_wrk = options.loadgen == "wrk" or (options.loadgen == "auto" and loadgen.wrk_available())
    if use_wrk and not loadgen.wrk_available():
        raise SystemExit("wrk is not installed: apt-get install -y wrk (or use --loadgen python)")
    max_connections = int(harness.server_variable(options.database_url, "max_connections") or 151)
    connections = options.baseline_connections or min(options.clients, max_connections - 21)

    log(f"recreating {make_url(options.database_url).database} on MariaDB {version}, migrating, seeding")
    benchdb.recreate_database(options.database_url)
    if options.redis_url:
        redis.Redis.from_url(options.redis_url).flushdb()  # claim-key marks of earlier runs
    app = benchdb.build_app(options.database_url, options.redis_url)
    mall = benchdb.seed(app, member_count=options.members)
    tokens = benchdb.shopper_tokens(app, benchdb.seed_shoppers(app, mall))
    secret_key = benchdb.bench_config(options.database_url).SECRET_KEY
    database_meter = harness.database_meter(options.database_url)

    url = make_url(options.database_url)
    tz = app.extensions["mallmember"].mall_tz

    def baseline_run(template_id: int, requests: int, prefix: str) -> CountedRun:
        return claim_baseline.run(
            url,
            template_id,
            mall.member_ids,
            tz,
            clients=options.clients,
            connections=connections,
            total=requests,
            key_prefix=prefix,
        )

    load_before = os.getloadavg()[0]
    rounds: list[tuple[Side, Side]] = []
    with (
        tempfile.NamedTemporaryFile("w", prefix="bench-tokens-", suffix=".txt") as token_file,
        harness.gunicorn(
            options.database_url,
            workers=options.workers,
            threads=options.threads,
            secret_key=secret_key,
            redis_url=options.redis_url,
        ) as server,
    ):
        token_file.write("\n".join(tokens) + "\n")
        token_file.flush()

        def http_run(template_id: int, requests: int, prefix: str) -> CountedRun:
            path = f"/api/mp/v1/coupon-templates/{template_id}/claims"
            if use_wrk:
                return loadgen.run_wrk_claims(
                    server.base_url + path,
                    Path(token_file.name),
                    clients=options.clients,
                    total=requests,
                    key_prefix=prefix,
                )
            return loadgen.run_python_claims(
                "127.0.0.1",
                server.port,
                path,
                tokens,
                clients=options.clients,
                total=requests,
                key_prefix=prefix,
            )

        app_meter = harness.app_cpu_meter(
            server.pid, database_meter, use_wrk=use_wrk, extra=harness.redis_meter(options.redis_url)
        )
        baseline_meter: cpu.Meter = {"Python": cpu.own_seconds, **database_meter}
        # Alternating, each side on templates of its own: a disturbance on this shared machine
        # shows as one odd round instead of skewing one side.
        for number in range(1, options.rounds + 1):
            log(f"round {number} of {options.rounds}")
            app_side = measured_side(f"app-{number}", app, options, http_run, app_meter)
            base_side = measured_side(f"baseline-{number}", app, options, baseline_run, baseline_meter)
            rounds.append((app_side, base_side))
        server.report_unhandled_errors("app (incl. warm-up)")

    driver = "wrk, 1 thread, exact count" if use_wrk else "Python http.client threads, sharing the cores"
    print()
    print(
        f"{options.requests} claims per side and round from {options.clients} clients, "
        f"stock {options.stock}, limit 1 per member, {options.members} shoppers; "
        f"gunicorn gthread {options.workers} workers x {options.threads} threads; load: {driver}; "
        f"baseline: {options.clients} threads sharing {connections} connections; "
        f"app Redis: {options.redis_url or 'none'}"
    )
    print(
        f"{os.cpu_count()} cores; MariaDB {version}; "
        f"load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f}"
    )
    print_table(rounds)
    clean = not any(side.problems for both in rounds for side in both)
    print(f"verify_coupons and verify_ledger after each side: {'clean' if clean else 'NOT CLEAN'}")
    app_rate = statistics.median(app.run.measurement.per_second for app, _ in rounds)
    figure = results.Figure(
        "flash coupon claim, throughput",
        app_rate,
        statistics.median(base.run.measurement.per_second for _, base in rounds),
        "req/s",
        f">= {TARGET_RATE:,} req/s",
        app_rate >= TARGET_RATE,
        statistics.median(_ratio(app, base) for app, base in rounds),
        f"median of {len(rounds)} rounds of {options.requests:,} claims from {options.clients} clients, "
        f"stock {options.stock}; the ratio is the median of the rounds' ratios",
    )
    results.write_json(
        options.json,
        "flash_claim",
        [figure],
        ok=clean,
        settings={
            "requests": options.requests,
            "clients": options.clients,
            "stock": options.stock,
            "rounds": options.rounds,
            "redis": options.redis_url or None,
            "load": driver,
        },
    )
    return 0 if clean else 1


def print_table(rounds: list[tuple[Side, Side]]) -> None:
    print(
        f"{'round':<6}{'side':<12}{'handled':>8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'issued':>8}"
        f"{'sold out':>9}{'limit':>7}{'errors':>8}{'OVERSELL':>10}{'stock left':>11}{'ratio':>7}"
    )
    for number, (app_side, base_side) in enumerate(rounds, start=1):
        for label, side in (("app (HTTP)", app_side), ("baseline", base_side)):
            run, stock = side.run, side.stock
            m = run.measurement
            shown_ratio = f"{_ratio(app_side, base_side):>7.2f}" if side is app_side else ""
            print(
                f"{number:<6}{label:<12}{m.requests:>8}{m.per_second:>9.1f}{m.p50_ms:>9.1f}{m.p99_ms:>9.1f}"
                f"{stock.issued:>8}{run.count('sold_out'):>9}{run.count('limit'):>7}{m.errors:>8}"
                f"{stock.oversold:>10}{stock.remaining:>11}{shown_ratio}"
            )
            odd = {k: v for k, v in run.outcomes.items() if k not in loadgen.OK_OUTCOMES}
            if odd or run.count("retried"):
                print(f"  {label}: other outcomes: {dict(odd, retried=run.count('retried'))}")
    app_rate = statistics.median(app.run.measurement.per_second for app, _ in rounds)
    ratio = statistics.median(_ratio(app, base) for app, base in rounds)
    print(f"median ratio app/baseline: {ratio:.2f}")
    print(
        f"target >= {TARGET_RATE:,} handled requests/s on 2 cores: app {app_rate:,.0f} (median of "
        f"{len(rounds)}; {'met' if app_rate >= TARGET_RATE else 'MISSED'})"
    )
    print("CPU ms per request (measured claims):")
    for number, both in enumerate(rounds, start=1):
        for label, side in zip(("app (HTTP)", "baseline"), both, strict=True):
            spent = side.cpu.per_request_ms(side.run.measurement.requests)
            parts = ", ".join(f"{name} {ms:.2f}" for name, ms in spent.items())
            print(
                f"  {number} {label:<12}{parts}; cores busy {side.cpu.cores_busy():.2f}"
                f" (+ {side.cpu.other_cores_busy():.2f} by other processes)"
            )


def _ratio(app_side: Side, base_side: Side) -> float:
    base_rate = base_side.run.measurement.per_second
    return app_side.run.measurement.per_second / base_rate if base_rate else 0.0


if __name__ == "__main__":
    raise SystemExit(main())
