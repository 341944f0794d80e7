"""`make run`: migrate, seed a demo mall, start the WeChat/WeCom/car-park sandbox, the scheduler
(`flask scheduler`, its own process, as in production), and serve the API.

The sandbox runs as its own process; the app talks to it through the same
wechatpy clients that production points at api.weixin.qq.com / qyapi.weixin.qq.com,
and through the car-park adapter that production points at the car park's open API.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command
from dotenv import load_dotenv
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app, demo_data
from app.cli import alembic_config
from app.config import Config
from app.db import transaction
from app.extensions import extensions
from app.models import Staff
from app.sandbox import SandboxProcess, start_sandbox_process

# Cars waiting in the sandbox lot: (plate, minutes since they entered). Bind one to a shopper
# (POST /api/mp/v1/me/plates) and ask for a quote.
DEMO_CARS = [("粤B12345", 95), ("沪AD12345", 185), ("京A88888", 20), ("浙A12345F", 26 * 60)]


def main() -> None:
    # SIGTERM unwinds like Ctrl-C, so the sandbox process is stopped with us.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    load_dotenv()
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    base_config = Config.from_env()

    with start_sandbox_process(
        wechat_port=int(os.environ.get("SANDBOX_WECHAT_PORT", "0")),
        wecom_port=int(os.environ.get("SANDBOX_WECOM_PORT", "0")),
        carpark_port=int(os.environ.get("SANDBOX_CARPARK_PORT", "0")),
        env=base_config.credential_env(),
    ) as sandbox:
        config = base_config.with_overrides(
            WECHAT_API_BASE=sandbox.wechat_url,
            WECOM_API_BASE=sandbox.wecom_url,
            CARPARK_API_BASE=sandbox.carpark_url,
            PUBLIC_BASE_URL=os.environ.get("PUBLIC_BASE_URL") or f"http://{host}:{port}",
        )
        seed_demo_cars(sandbox)
        command.upgrade(alembic_config(config.DATABASE_URL), "head")
        app = create_app(config)
        with app.app_context(), transaction() as session:
            if not demo_data.is_seeded(session):
                summary = demo_data.seed_demo_mall(session, extensions().phone_vault, extensions().mall_tz)
                print(
                    f"Seeded demo mall: {summary.stores} stores, {summary.members} members, "
                    f"{summary.purchases} purchases."
                )
            seed_wecom_directory(sandbox, session)

        with scheduler_process(config):
            print_banner(config, sandbox, f"http://{host}:{port}")
            app.run(host=host, port=port, use_reloader=False, threaded=True)


@contextmanager
def scheduler_process(config: Config) -> Iterator[subprocess.Popen[bytes]]:
    """`flask scheduler` in its own process, talking to the same database and sandbox."""
    env = {
        **os.environ,
        "DATABASE_URL": config.DATABASE_URL,
        "WECHAT_API_BASE": config.WECHAT_API_BASE,
        "WECOM_API_BASE": config.WECOM_API_BASE,
        "CARPARK_API_BASE": config.CARPARK_API_BASE,
        "PUBLIC_BASE_URL": config.PUBLIC_BASE_URL,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
    )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def seed_demo_cars(sandbox: SandboxProcess) -> None:
    for plate, minutes_ago in DEMO_CARS:
        sandbox.park_car(plate, minutes_ago)


def seed_wecom_directory(sandbox: SandboxProcess, session: Session) -> None:
    """The sandbox's corp directory is the mall's staff: messages to anyone else come back in
    `invaliduser`, as they would from WeCom."""
    staff = session.execute(select(Staff.wecom_userid, Staff.name)).all()
    if staff:
        sandbox.add_wecom_users(dict(staff))


def print_banner(config: Config, sandbox: SandboxProcess, base: str) -> None:
    admin = {"username": demo_data.DEMO_ADMIN_USERNAME, "password": demo_data.DEMO_ADMIN_PASSWORD}
    signup = {"phone_code": "sandbox-phone:13800138000", "consent_version": config.PRIVACY_POLICY_VERSION}
    lines = [
        f"MallMember is running: {config.MALL_NAME}",
        f"  Console         {base}/console/   (log in as the operator below)",
        f"  API             {base}/api",
        f"  API docs        {base}/api/docs   (spec: {base}/api/openapi.json)",
        f"  WeChat sandbox  {sandbox.wechat_url}",
        f"  WeCom sandbox   {sandbox.wecom_url}",
        f"  Car park        {sandbox.carpark_url}   (cars in the lot: {sandbox.carpark_url}/sandbox/cars)",
        f"  Database        {config.DATABASE_URL}",
        "  Scheduler       flask scheduler, its own process (runs: GET /api/admin/v1/job-runs)",
        "",
        "Demo logins:",
        f"  operator  POST /api/admin/v1/auth/login  {json.dumps(admin)}",
        '  staff     POST /api/staff/v1/auth/login  {"code": "sandbox:staff01"}',
        "            (advisors: sandbox:advisor01 ... sandbox:advisor20)",
        '  shopper   POST /api/mp/v1/auth/login     {"code": "sandbox:<any-openid>"}',
        f"            then POST /api/mp/v1/members with {json.dumps(signup)}",
        "",
        "Demo cars in the lot: " + ", ".join(f"{plate} ({minutes} min)" for plate, minutes in DEMO_CARS),
        '  bind one: POST /api/mp/v1/me/plates {"plate": "粤B12345"}, then',
        "  GET /api/mp/v1/me/parking/quote?plate=粤B12345 and POST /api/mp/v1/me/parking/payments",
        "",
        "WeCom 联系我: a shopper (unionid sandbox-union-<openid>) adds advisor01 on WeCom:",
        f"  FLASK_APP=wsgi WECOM_API_BASE={sandbox.wecom_url} flask sandbox wecom-event add-contact \\",
        f"      --advisor advisor01 --unionid sandbox-union-<openid> --callback-url {base}/wecom/callback",
    ]
    print("\n" + "\n".join(lines) + "\n", flush=True)


if __name__ == "__main__":
    main()
