"""Soak test: the API under a mixed load while the sandbox injects random faults, then every invariant.

    python scripts/soak.py --minutes 10 [--database-url mysql+pymysql://root@127.0.0.1:3306/mm_soak]

Starts the sandbox (WeChat, WeCom, car park) and the app (in-process WSGI server, threaded) against a
fresh database (emptied first: never point it at one you keep) seeded with the demo mall. Shoppers
sign up, check in, claim coupons and pay parking with points; staff credit purchases by member code,
verify coupons and refund; advisors open their task list, complete tasks and write notes; the WeCom
outbox is fed and sent as the scheduler would. Meanwhile a fault injector queues random sandbox
faults: timeouts, HTTP 5xx, errcode 40001 and 45009, lost answers, car-park refusals. Afterwards the
faults are cleared, the outbox drained and parking reconciled, and the invariants are checked:
`flask points verify`, `flask coupons verify`, no 500, no WeCom push delivered twice, no outbox row
lost (each delivered or recorded failed), every parking payment settled as the car park has it.
Prints operations by kind, errors by code and each invariant; exits 1 if one fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import re
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from alembic import command
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app import create_app, demo_data
from app.cli import alembic_config
from app.config import Config
from app.db import bound_database, run_transaction, transaction
from app.extensions import extensions
from app.models import (
    AdvisorTask,
    Member,
    OutboxKind,
    OutboxStatus,
    ParkingPayment,
    ParkingPaymentStatus,
    Staff,
    StaffRole,
    TaskRule,
    TaskStatus,
    TaskTrigger,
    TaskType,
    WeComOutboxMessage,
)
from app.sandbox import SandboxProcess, start_sandbox_process
from app.services import push

MP, STAFF = "/api/mp/v1", "/api/staff/v1"
REQUEST_TIMEOUT = 30
# The app's timeouts for WeChat/WeCom and the car park; injected timeouts wait a little longer.
CLIENT_TIMEOUT_SECONDS = 1
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
TASK_FORM = re.compile(r"/wecom/advisor/tasks/(\d+)/complete")
MEMBER_LINK = re.compile(r"/wecom/advisor/members/(\d+)")
WECHAT_PATHS = ["/sns/jscode2session", "/wxa/business/getuserphonenumber", "/cgi-bin/stable_token", "*"]
WECOM_PATHS = ["/cgi-bin/gettoken", "/cgi-bin/auth/getuserinfo", "/cgi-bin/message/send", "*"]
CARPARK_PATHS = ["/api/v1/parking/fee", "/api/v1/parking/discount", "/api/v1/parking/payment-status", "*"]


@dataclass
class Tally:
    """Operations by kind and errors by code, shared by every actor."""

    operations: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, kind: str, response: requests.Response | None, error: str | None = None) -> None:
        with self.lock:
            self.operations[kind] += 1
            if response is None:
                self.errors[f"{kind} {error}"] += 1
                return
            if response.status_code < 400:
                return
            try:
                code = response.json().get("code", f"HTTP {response.status_code}")
            except ValueError:
                code = f"HTTP {response.status_code}"
            self.errors[f"{kind} {code}"] += 1
            if response.status_code >= 500 and response.status_code != 503:
                self.server_errors.append(f"{kind}: {response.status_code} {response.text[:200]}")


@dataclass
class Invariant:
    name: str
    ok: bool
    detail: str


@dataclass
class SoakReport:
    seconds: float
    tally: Tally
    invariants: list[Invariant]

    @property
    def ok(self) -> bool:
        return all(invariant.ok for invariant in self.invariants)

    def lines(self) -> list[str]:
        out = [f"soak: {self.seconds:.0f} s, {sum(self.tally.operations.values())} operations"]
        out.append("operations by kind:")
        out += [f"  {kind:<24} {count}" for kind, count in sorted(self.tally.operations.items())]
        out.append("errors by code:")
        out += [f"  {code:<40} {count}" for code, count in self.tally.errors.most_common()] or ["  (none)"]
        out.append("faults injected:")
        out += [f"  {kind:<24} {count}" for kind, count in sorted(self.tally.faults.items())] or ["  (none)"]
        out.append("invariants:")
        out += [
            f"  {'PASS' if invariant.ok else 'FAIL'}  {invariant.name}: {invariant.detail}"
            for invariant in self.invariants
        ]
        return out


# --- setting up -----------------------------------------------------------------------------------------


def fresh_database(database_url: str | None) -> str:
    """An empty database at `database_url` (a temporary SQLite file by default)."""
    if not database_url:
        return f"sqlite:///{tempfile.mkdtemp(prefix='soak-')}/soak.db"
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database:
            Path(url.database).unlink(missing_ok=True)
        return database_url
    name = url.database
    if not name:
        raise SystemExit("--database-url must name a database")
    server = create_engine(url.set(database=""), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        connection.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
    server.dispose()
    return database_url


def soak_config(database_url: str, sandbox: SandboxProcess, **overrides: Any) -> Config:
    return Config.from_env(
        {},
        DATABASE_URL=database_url,
        WECHAT_API_BASE=sandbox.wechat_url,
        WECOM_API_BASE=sandbox.wecom_url,
        CARPARK_API_BASE=sandbox.carpark_url,
        HTTP_TIMEOUT_SECONDS=CLIENT_TIMEOUT_SECONDS,
        CARPARK_TIMEOUT_SECONDS=CLIENT_TIMEOUT_SECONDS,
        # Longer than a payment request spends telling the car park.
        CARPARK_PENDING_GRACE_SECONDS=30,
        **overrides,
    )


def seed(app: Any, sandbox: SandboxProcess, tasks_per_advisor: int) -> dict[str, Any]:
    """The demo mall, open tasks for every advisor, and the corp directory in the WeCom sandbox."""
    with app.app_context(), transaction() as session:
        demo_data.seed_demo_mall(session, extensions().phone_vault, extensions().mall_tz, member_count=60)
        staff = session.scalars(select(Staff).where(Staff.is_active.is_(True))).all()
        sandbox.add_wecom_users({person.wecom_userid: person.name for person in staff})
        advisors = [person for person in staff if person.role is StaffRole.ADVISOR]
        rule = TaskRule(
            name="回访",
            trigger_kind=TaskTrigger.TAG,
            task_type=TaskType.VIP_INVITATION,
            message_template="您好",
            priority=1,
            cool_down_days=7,
            due_in_days=3,
        )
        session.add(rule)
        session.flush()
        member_ids = session.scalars(select(Member.id).order_by(Member.id)).all()
        today = datetime.now(extensions().mall_tz).date()
        for index, advisor in enumerate(advisors):
            for member_id in member_ids[index * tasks_per_advisor : (index + 1) * tasks_per_advisor]:
                session.add(
                    AdvisorTask(
                        business_date=today,
                        member_id=member_id,
                        advisor_id=advisor.id,
                        store_id=advisor.store_id,
                        rule_id=rule.id,
                        task_type=TaskType.VIP_INVITATION,
                        priority=1,
                        trigger_kind=TaskTrigger.TAG,
                        trigger_value="soak",
                        due_date=today + timedelta(days=3),
                        status=TaskStatus.OPEN,
                    )
                )
        counters = [person for person in staff if person.role is StaffRole.STORE_STAFF]
        return {
            "advisors": [person.wecom_userid for person in advisors],
            "counters": [(person.wecom_userid, person.store_id) for person in counters],
        }


# --- the actors -----------------------------------------------------------------------------------------


class Mall:
    """What the actors share: the base URL, the tally, registered shoppers and credited purchases."""

    def __init__(self, base: str, sandbox: SandboxProcess, tally: Tally, deadline: float, seed: int) -> None:
        self.base, self.sandbox, self.tally, self.deadline = base, sandbox, tally, deadline
        self.shoppers: list[str] = []
        self.purchases: list[tuple[int, int]] = []
        self.lock = threading.Lock()
        self.sequence = iter(range(1, 10**9))
        self.rng = random.Random(seed)

    def next(self) -> int:
        with self.lock:
            return next(self.sequence)

    def call(self, http: requests.Session, kind: str, method: str, path: str, **options: Any) -> Any:
        """The response, or None if the request itself failed (recorded either way)."""
        try:
            response = http.request(method, self.base + path, timeout=REQUEST_TIMEOUT, **options)
        except requests.RequestException as error:
            self.tally.record(kind, None, type(error).__name__)
            return None
        self.tally.record(kind, response)
        return response

    def running(self) -> bool:
        return time.monotonic() < self.deadline


def _ok(response: Any) -> bool:
    return response is not None and response.status_code < 400


def _items(body: Any) -> list[Any]:
    return list(body["items"] if isinstance(body, dict) else body)


def shopper(mall: Mall, worker: int) -> None:
    http = requests.Session()
    rng = random.Random(worker)
    token = None
    plate = None
    while mall.running():
        if token is None:
            n = mall.next()
            login = mall.call(
                http, "shopper.login", "POST", f"{MP}/auth/login", json={"code": f"sandbox:soak-{worker}-{n}"}
            )
            if not _ok(login):
                continue
            bearer = {"Authorization": f"Bearer {login.json()['token']}"}
            signup = mall.call(
                http,
                "shopper.sign_up",
                "POST",
                f"{MP}/members",
                json={"phone_code": f"sandbox-phone:139{worker:02d}{n:06d}", "consent_version": "2026-11"},
                headers=bearer,
            )
            if not _ok(signup):
                continue
            token, plate = bearer, f"粤S{worker:01d}{n % 10000:04d}"
            with mall.lock:
                mall.shoppers.append(login.json()["token"])
            mall.call(
                http, "shopper.bind_plate", "POST", f"{MP}/me/plates", json={"plate": plate}, headers=token
            )
            continue
        action = rng.choice(["check_in", "me", "points", "claim", "claim", "park", "park", "new"])
        if action == "new" and rng.random() < 0.3:
            token = None  # another shopper signs up on this phone
        elif action == "new":
            mall.call(http, "shopper.coupons", "GET", f"{MP}/me/coupons", headers=token)
        elif action == "check_in":
            mall.call(http, "shopper.check_in", "POST", f"{MP}/me/check-ins", headers=token)
        elif action == "me":
            mall.call(http, "shopper.me", "GET", f"{MP}/me", headers=token)
        elif action == "points":
            mall.call(http, "shopper.points", "GET", f"{MP}/me/points", headers=token)
        elif action == "claim":
            templates = mall.call(
                http, "shopper.coupon_templates", "GET", f"{MP}/coupon-templates", headers=token
            )
            if _ok(templates) and _items(templates.json()):
                template = rng.choice(_items(templates.json()))
                mall.call(
                    http,
                    "shopper.claim_coupon",
                    "POST",
                    f"{MP}/coupon-templates/{template['id']}/claims",
                    headers={**token, "Idempotency-Key": uuid.uuid4().hex},
                )
        else:
            assert plate is not None
            mall.sandbox.park_car(plate, rng.randint(45, 400))
            quote = mall.call(
                http,
                "shopper.parking_quote",
                "GET",
                f"{MP}/me/parking/quote",
                params={"plate": plate},
                headers=token,
            )
            if _ok(quote):
                mall.call(
                    http,
                    "shopper.parking_pay",
                    "POST",
                    f"{MP}/me/parking/payments",
                    json={"quote_id": quote.json()["quote_id"]},
                    headers={**token, "Idempotency-Key": uuid.uuid4().hex},
                )
            if rng.random() < 0.5:
                mall.sandbox.car_leaves(plate)


def counter_staff(mall: Mall, userid: str, store_id: int) -> None:
    http = requests.Session()
    rng = random.Random(userid)
    token = None
    while mall.running():
        if token is None:
            login = mall.call(
                http, "staff.login", "POST", f"{STAFF}/auth/login", json={"code": f"sandbox:{userid}"}
            )
            if _ok(login):
                token = {"Authorization": f"Bearer {login.json()['token']}"}
            continue
        with mall.lock:
            shopper_token = rng.choice(mall.shoppers) if mall.shoppers else None
            purchase = rng.choice(mall.purchases) if mall.purchases else None
        if shopper_token is None:
            time.sleep(0.2)
            continue
        customer = {"Authorization": f"Bearer {shopper_token}"}
        action = rng.choice(["credit", "credit", "verify", "refund"])
        if action == "credit":
            code = mall.call(http, "shopper.member_code", "GET", f"{MP}/me/code", headers=customer)
            if not _ok(code):
                continue
            amount = rng.randint(1_000, 200_000)
            credited = mall.call(
                http,
                "staff.credit_purchase",
                "POST",
                f"{STAFF}/purchases",
                json={
                    "member_code": code.json()["code"],
                    "store_id": store_id,
                    "receipt_no": f"SOAK{mall.next():08d}",
                    "amount_fen": amount,
                },
                headers=token,
            )
            if _ok(credited):
                with mall.lock:
                    mall.purchases.append((credited.json()["purchase"]["id"], amount))
        elif action == "verify":
            coupons = mall.call(http, "shopper.coupons", "GET", f"{MP}/me/coupons", headers=customer)
            usable = [
                coupon for coupon in (_items(coupons.json()) if _ok(coupons) else [])
                if coupon.get("status") == "available" and coupon.get("kind") != "parking"
            ]  # fmt: skip
            if not usable:
                continue
            coupon_code = mall.call(
                http,
                "shopper.coupon_code",
                "GET",
                f"{MP}/me/coupons/{usable[0]['id']}/code",
                headers=customer,
            )
            if _ok(coupon_code):
                mall.call(
                    http,
                    "staff.verify_coupon",
                    "POST",
                    f"{STAFF}/coupon-redemptions",
                    json={
                        "code": coupon_code.json()["code"],
                        "store_id": store_id,
                        "order_amount_fen": 100_000,
                    },
                    headers=token,
                )
        elif purchase is not None:
            purchase_id, amount = purchase
            mall.call(
                http,
                "staff.refund",
                "POST",
                f"{STAFF}/purchases/{purchase_id}/refunds",
                json={"refund_no": f"SR{mall.next():08d}", "amount_fen": max(1, amount // rng.randint(2, 5))},
                headers=token,
            )


def advisor(mall: Mall, userid: str) -> None:
    http = requests.Session()
    rng = random.Random(userid)
    signed_in = False
    while mall.running():
        if not signed_in:
            login = mall.call(
                http, "advisor.login", "GET", "/wecom/advisor/login", params={"code": f"sandbox:{userid}"}
            )
            signed_in = _ok(login) and "csrf_token" in login.text
            continue
        page = mall.call(http, "advisor.task_list", "GET", "/wecom/advisor/")
        if not _ok(page):
            signed_in = False
            continue
        csrf = CSRF.search(page.text)
        task_ids, member_ids = TASK_FORM.findall(page.text), MEMBER_LINK.findall(page.text)
        if csrf is None:
            continue
        if task_ids and rng.random() < 0.5:
            mall.call(
                http,
                "advisor.complete_task",
                "POST",
                f"/wecom/advisor/tasks/{rng.choice(task_ids)}/complete",
                data={"csrf_token": csrf.group(1), "outcome": "contacted", "note": "已电话回访"},
            )
        elif member_ids:
            mall.call(
                http,
                "advisor.note",
                "POST",
                f"/wecom/advisor/members/{rng.choice(member_ids)}/info",
                data={"csrf_token": csrf.group(1), "advisor_note": f"回访记录 {mall.next()}"},
            )
        time.sleep(0.05)


def fault_injector(mall: Mall, every: float) -> None:
    """Random faults on random paths (or all of them), for a few calls or until the next round."""
    rng = mall.rng
    sandbox = mall.sandbox
    late = CLIENT_TIMEOUT_SECONDS + 0.5
    while mall.running():
        for server in ("wechat", "wecom", "carpark"):
            sandbox.clear_faults(server, "*")  # an "until cleared" fault lasts one round
        server = rng.choice(["wechat", "wecom", "carpark"])
        paths = {"wechat": WECHAT_PATHS, "wecom": WECOM_PATHS, "carpark": CARPARK_PATHS}[server]
        path = rng.choice(paths)
        times = None if path == "*" else rng.randint(1, 3)
        if server == "carpark":
            kind = rng.choice(["business", "http_error", "timeout", "lost_answer"])
            options: dict[str, Any] = {"delaySeconds": late} if kind == "timeout" else {}
            if times is None:
                options["untilCleared"] = True
            sandbox.carpark_fault(path, kind, times or 1, **options)
        else:
            kind = rng.choice(["40001", "45009", "http_error", "timeout", "lost_answer"])
            if kind in ("40001", "45009"):
                sandbox.inject_fault(server, path, int(kind), times=times)  # type: ignore[arg-type]
            elif kind == "http_error":
                sandbox.inject_fault(server, path, -1, http_status=rng.choice([500, 502, 503]), times=times)  # type: ignore[arg-type]
            elif kind == "timeout":
                sandbox.inject_fault(server, path, -1, delay_seconds=late, times=times)  # type: ignore[arg-type]
            else:
                sandbox.inject_fault(server, path, kind="lost_answer", times=times)  # type: ignore[arg-type]
        with mall.tally.lock:
            mall.tally.faults[f"{server} {kind}"] += 1
        time.sleep(every * rng.uniform(0.5, 1.5))


def scheduler(mall: Mall, app: Any, advisors: list[str]) -> None:
    """What `flask scheduler` does meanwhile: feed and send the WeCom outbox, reconcile parking."""
    runner = app.test_cli_runner()
    rounds = 0
    while mall.running():
        rounds += 1
        with app.app_context():
            items = [
                push.OutboxItem(
                    f"soak:{rounds}:{userid}",
                    OutboxKind.DIGEST,
                    [userid],
                    {"msgtype": "text", "text": {"content": f"第 {rounds} 轮任务提醒：{userid}"}},
                )
                for userid in advisors
            ]
            now = datetime.now(UTC)
            added = run_transaction(
                lambda session, items=items, now=now: push.enqueue(session, items, now.date(), now)
            )
            with mall.tally.lock:
                mall.tally.operations["scheduler.enqueue_push"] += added
            report = push.send_due(lambda: transaction(app), extensions().wecom, lambda: datetime.now(UTC))
            with mall.tally.lock:
                mall.tally.operations["scheduler.push_sent"] += report.sent
        if rounds % 5 == 0:
            runner.invoke(args=["jobs", "run", "reconcile-parking"])
            with mall.tally.lock:
                mall.tally.operations["scheduler.reconcile_parking"] += 1
        time.sleep(1.0)


# --- afterwards ---------------------------------------------------------------------------------------


def drain(app: Any, sandbox: SandboxProcess) -> None:
    """Faults cleared: send what the outbox still holds (later, as the scheduler would over the next
    hours) and settle every parking payment."""
    for server in ("wechat", "wecom", "carpark"):
        sandbox.clear_faults(server)
    with app.app_context():
        for hours in range(1, 4):
            later = datetime.now(UTC) + timedelta(hours=hours)
            push.send_due(lambda: transaction(app), extensions().wecom, lambda later=later: later)
    app.test_cli_runner().invoke(args=["jobs", "run", "reconcile-parking"])


def check_invariants(app: Any, sandbox: SandboxProcess, tally: Tally) -> list[Invariant]:
    runner = app.test_cli_runner()
    results = []
    for group in ("points", "coupons"):
        verified = runner.invoke(args=[group, "verify"])
        last = (verified.output.strip().splitlines() or [""])[-1]
        results.append(Invariant(f"flask {group} verify", verified.exit_code == 0, last[:200]))
    results.append(
        Invariant(
            "no 500 from the API",
            not tally.server_errors,
            f"{len(tally.server_errors)} server errors"
            + (f", first: {tally.server_errors[0]}" if tally.server_errors else ""),
        )
    )
    deliveries = Counter(
        (
            message["touser"],
            json.dumps(message.get("text") or message.get("textcard"), sort_keys=True, ensure_ascii=False),
        )
        for message in sandbox.messages("wecom")
    )
    twice = [key for key, count in deliveries.items() if count > 1]
    results.append(
        Invariant(
            "no WeCom push delivered twice",
            not twice,
            f"{sum(deliveries.values())} delivered, {len(sandbox.wecom_duplicates())} repeats held back by "
            f"WeCom's duplicate check, {len(twice)} delivered twice",
        )
    )
    with app.app_context(), transaction() as session:
        rows = session.scalars(select(WeComOutboxMessage)).all()
        statuses = Counter(row.status.value for row in rows)
        missing = [
            row.dedupe_key
            for row in rows
            if row.status is OutboxStatus.SENT
            and (
                row.touser,
                json.dumps(
                    row.payload.get("text") or row.payload.get("textcard"), sort_keys=True, ensure_ascii=False
                ),
            )
            not in deliveries
        ]
        unsettled = [
            row.dedupe_key for row in rows if row.status not in (OutboxStatus.SENT, OutboxStatus.DEAD)
        ]
        silent_dead = [
            row.dedupe_key
            for row in rows
            if row.status is OutboxStatus.DEAD and not row.last_error and not row.invaliduser
        ]
        results.append(
            Invariant(
                "no lost WeCom push (each delivered or recorded failed)",
                not (missing or unsettled or silent_dead),
                f"{len(rows)} outbox rows {dict(statuses)}; sent but not delivered {len(missing)}, "
                f"neither sent nor failed {len(unsettled)}, failed without a reason {len(silent_dead)}",
            )
        )
        payments = session.scalars(select(ParkingPayment)).all()
        applied = {discount["order_no"] for discount in sandbox.carpark_discounts()}
        by_status = Counter(payment.status.value for payment in payments)
        open_ = [
            p.order_no
            for p in payments
            if p.status in (ParkingPaymentStatus.PENDING, ParkingPaymentStatus.UNKNOWN)
        ]
        paid_not_applied = [
            p.order_no
            for p in payments
            if p.status is ParkingPaymentStatus.PAID and p.order_no not in applied
        ]
        refunded_applied = [
            p.order_no
            for p in payments
            if p.status is ParkingPaymentStatus.REFUNDED and p.order_no in applied
        ]
        results.append(
            Invariant(
                "parking payments settled as the car park has them",
                not (open_ or paid_not_applied or refunded_applied),
                f"{len(payments)} payments {dict(by_status)}; unsettled {len(open_)}, paid but not applied "
                f"{len(paid_not_applied)}, refunded though applied {len(refunded_applied)}",
            )
        )
    return results


# --- the run --------------------------------------------------------------------------------------------


def run_soak(
    seconds: float,
    database_url: str | None = None,
    *,
    shoppers: int = 6,
    counters: int = 2,
    advisors: int = 2,
    fault_every: float = 2.0,
    seed_value: int = 11,
    log: Any = print,
) -> SoakReport:
    # One line per request would drown the report (and cost the load its CPU).
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    database_url = fresh_database(database_url)
    command.upgrade(alembic_config(database_url), "head")
    log(f"soak: database {make_url(database_url).render_as_string(hide_password=True)}")
    with start_sandbox_process(env=Config.from_env({}).credential_env()) as sandbox:
        app = create_app(soak_config(database_url, sandbox))
        people = seed(app, sandbox, tasks_per_advisor=40)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        tally = Tally()
        started = time.monotonic()
        mall = Mall(f"http://127.0.0.1:{server.server_port}", sandbox, tally, started + seconds, seed_value)
        log(f"soak: serving at {mall.base} for {seconds:.0f} s")
        threads = [threading.Thread(target=shopper, args=(mall, n)) for n in range(shoppers)]
        threads += [
            threading.Thread(target=counter_staff, args=(mall, userid, store_id))
            for userid, store_id in (people["counters"] * counters)[:counters]
        ]
        threads += [
            threading.Thread(target=advisor, args=(mall, userid)) for userid in people["advisors"][:advisors]
        ]
        threads += [
            threading.Thread(target=fault_injector, args=(mall, fault_every)),
            threading.Thread(target=scheduler, args=(mall, app, people["advisors"])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        drain(app, sandbox)
        invariants = check_invariants(app, sandbox, tally)
        server.shutdown()
        server.server_close()
        bound_database(app).engine.dispose()
    return SoakReport(elapsed, tally, invariants)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument(
        "--database-url",
        help="emptied first; default: a temporary SQLite file (MariaDB for real concurrency)",
    )
    parser.add_argument("--shoppers", type=int, default=6)
    parser.add_argument("--staff", type=int, default=2)
    parser.add_argument("--advisors", type=int, default=2)
    parser.add_argument("--fault-every", type=float, default=2.0, help="seconds between injected faults")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    report = run_soak(
        args.minutes * 60,
        args.database_url,
        shoppers=args.shoppers,
        counters=args.staff,
        advisors=args.advisors,
        fault_every=args.fault_every,
        seed_value=args.seed,
    )
    print("\n".join(report.lines()), flush=True)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
