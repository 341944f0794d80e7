"""Where one request spends its time: cProfile over sequential requests, in-process.

    .venv/bin/python scripts/bench/profile_request.py [--workload purchase|claim|sold-out-claim]
        [--requests 500] [--database-url ...]

Recreates and seeds the bench database like earn.py, then sends requests through Flask's test client
(everything but gunicorn's socket handling) one after another:
- `purchase` posts purchases as staff (earn.py's request);
- `claim` has each shopper claim a coupon in stock (a flash claim's winners; at most `--members`
  requests in all, warm-up included);
- `sold-out-claim` has random shoppers claim a sold-out coupon (95 % of flash_claim.py's requests);
- `home` has random shoppers open the home screen: `me`, `me/points` and `me/coupons` (home.py's calls).
Prints the SQL round trips per request, CPU time per request by package, and the top functions by own
time and by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import random
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

import benchdb  # noqa: E402
from flask import Flask  # noqa: E402
from sqlalchemy import event  # noqa: E402

from app.db import bound_database  # noqa: E402

# Function-file fragments that name the layer a function belongs to, checked in order.
LAYERS = (
    ("pymysql", "pymysql (driver)"),
    ("sqlalchemy/orm", "sqlalchemy orm"),
    ("sqlalchemy", "sqlalchemy core/engine/pool"),
    ("marshmallow", "marshmallow"),
    ("webargs", "webargs"),
    ("flask_smorest", "flask-smorest"),
    ("apispec", "apispec"),
    ("werkzeug", "werkzeug"),
    ("flask", "flask"),
    ("itsdangerous", "itsdangerous (token)"),
    ("zoneinfo", "zoneinfo/datetime"),
    ("/app/", "app code"),
    ("/wecom/", "wecom views"),
)


def layer_of(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (socket, json, ...)"
    for fragment, name in LAYERS:
        if fragment in filename:
            return name
    return "other python"


Workload = Callable[[int, str], None]


def purchase_workload(app: Flask, mall: benchdb.Mall) -> Workload:
    token = benchdb.staff_token(app, mall.staff_id)
    return lambda count, prefix: post_purchases(app, token, mall, count, prefix)


def claim_workload(app: Flask, mall: benchdb.Mall, *, sold_out: bool) -> Workload:
    """Shoppers claim a coupon: one that is sold out (each gets 409), or one with stock for all of
    them, one claim per shopper (each gets 201, so at most one request per seeded member)."""
    tokens = benchdb.shopper_tokens(app, benchdb.seed_shoppers(app, mall))
    stock = 0 if sold_out else len(tokens)
    template_id = benchdb.create_flash_template(app, stock=stock, name="已抢光" if sold_out else "满100减20")
    client = app.test_client()
    shoppers = iter(tokens)
    rng = random.Random(7)

    def send(count: int, prefix: str) -> None:
        for n in range(count):
            token = rng.choice(tokens) if sold_out else next(shoppers)
            response = client.post(
                f"/api/mp/v1/coupon-templates/{template_id}/claims",
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"{prefix}-claim-{n:06d}"},
            )
            if response.status_code != (409 if sold_out else 201):
                raise SystemExit(f"unexpected {response.status_code}: {response.get_data(as_text=True)}")

    return send


def home_workload(app: Flask, mall: benchdb.Mall) -> Workload:
    """Shoppers open the home screen: one request is one of its three calls, in turn."""
    tokens = benchdb.shopper_tokens(app, benchdb.seed_shoppers(app, mall))
    client = app.test_client()
    rng = random.Random(7)
    paths = ("/api/mp/v1/me", "/api/mp/v1/me/points", "/api/mp/v1/me/coupons")

    def send(count: int, prefix: str) -> None:
        for n in range(count):
            response = client.get(paths[n % 3], headers={"Authorization": f"Bearer {rng.choice(tokens)}"})
            if response.status_code != 200:
                raise SystemExit(f"unexpected {response.status_code}: {response.get_data(as_text=True)}")

    return send


WORKLOADS: dict[str, Callable[[Flask, benchdb.Mall], Workload]] = {
    "purchase": purchase_workload,
    "claim": lambda app, mall: claim_workload(app, mall, sold_out=False),
    "sold-out-claim": lambda app, mall: claim_workload(app, mall, sold_out=True),
    "home": home_workload,
}


def post_purchases(app: Flask, token: str, mall: benchdb.Mall, count: int, prefix: str) -> None:
    client = app.test_client()
    rng = random.Random(7)
    headers = {"Authorization": f"Bearer {token}"}
    for n in range(count):
        response = client.post(
            "/api/staff/v1/purchases",
            json={
                "member_id": rng.choice(mall.member_ids),
                "store_id": rng.choice(mall.store_ids),
                "receipt_no": f"{prefix}-{n}",
                "amount_fen": rng.randint(1_000, 80_000),
            },
            headers=headers,
        )
        if response.status_code != 201:
            raise SystemExit(f"unexpected {response.status_code}: {response.get_data(as_text=True)}")


def count_statements(app: Flask) -> list[str]:
    statements: list[str] = []
    engine = bound_database(app).engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement.split(None, 1)[0].upper())

    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine, "commit", lambda _conn: statements.append("COMMIT"))
    return statements


def profile_with_pyinstrument(send: Workload, requests: int) -> None:
    from pyinstrument import Profiler  # optional: pip install pyinstrument

    profiler = Profiler(interval=0.0005)
    profiler.start()
    send(requests, "sampled")
    profiler.stop()
    print(profiler.output_text(unicode=False, color=False, show_all=False))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="purchase")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--members", type=int, default=2000, help="members to seed (default 2000)")
    parser.add_argument("--database-url", default=benchdb.DEFAULT_DATABASE_URL)
    parser.add_argument(
        "--redis-url",
        default=benchdb.DEFAULT_REDIS_URL,
        help=f"the app's REDIS_URL (default {benchdb.DEFAULT_REDIS_URL}; '' for none)",
    )
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--pyinstrument",
        action="store_true",
        help="use pyinstrument (a sampling profiler, if installed) instead of cProfile",
    )
    args = parser.parse_args()

    benchdb.recreate_database(args.database_url)
    app = benchdb.build_app(args.database_url, args.redis_url)
    mall = benchdb.seed(app, member_count=args.members)
    send = WORKLOADS[args.workload](app, mall)
    send(100, "warm")

    statements = count_statements(app)
    began, began_cpu = time.perf_counter(), time.process_time()
    send(args.requests, "plain")
    wall_ms = (time.perf_counter() - began) * 1000 / args.requests
    plain_cpu_ms = (time.process_time() - began_cpu) * 1000 / args.requests
    kinds: dict[str, int] = defaultdict(int)
    for kind in statements:
        kinds[kind] += 1
    per_request = {kind: n / args.requests for kind, n in sorted(kinds.items())}
    print(f"sequential, unprofiled: {wall_ms:.2f} ms wall, {plain_cpu_ms:.2f} ms CPU per request")
    print(
        f"SQL round trips per request (COMMITs included): "
        f"{len(statements) / args.requests:.1f} "
        + ", ".join(f"{kind} {n:.1f}" for kind, n in per_request.items())
    )

    if args.pyinstrument:
        profile_with_pyinstrument(send, args.requests)
        return
    profiler = cProfile.Profile(time.process_time)  # CPU time: waiting on MariaDB is not counted
    began_cpu = time.process_time()
    profiler.enable()
    send(args.requests, "profiled")
    profiler.disable()
    cpu_ms = (time.process_time() - began_cpu) * 1000 / args.requests
    print(f"profiled: {cpu_ms:.2f} ms CPU per request (with profiler overhead)\n")

    stats = pstats.Stats(profiler)
    by_layer: dict[str, float] = defaultdict(float)
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in raw.items():
        by_layer[layer_of(filename)] += tottime
    total = sum(by_layer.values())
    print("own CPU time by layer:")
    for name, seconds in sorted(by_layer.items(), key=lambda item: -item[1]):
        print(f"  {name:<30}{seconds * 1000 / args.requests:>7.2f} ms/request {seconds / total:>6.1%}")

    for order in ("tottime", "cumulative"):
        buffer = io.StringIO()
        pstats.Stats(profiler, stream=buffer).strip_dirs().sort_stats(order).print_stats(args.top)
        print(f"\ntop {args.top} by {order}:")
        print(buffer.getvalue().split("\n", 6)[-1].rstrip())


if __name__ == "__main__":
    main()
