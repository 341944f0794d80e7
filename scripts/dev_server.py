"""`make run`: migrate, seed a demo mall, start the WeChat/WeCom sandbox, serve the API.

The sandbox runs as its own process; the app talks to it through the same
wechatpy clients that production points at api.weixin.qq.com / qyapi.weixin.qq.com.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command
from dotenv import load_dotenv

from app import create_app, demo_data
from app.cli import alembic_config
from app.config import Config
from app.db import transaction
from app.extensions import extensions
from app.sandbox import start_sandbox_process


def main() -> None:
    load_dotenv()
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "5000"))
    base_config = Config.from_env()

    with start_sandbox_process(
        wechat_port=int(os.environ.get("SANDBOX_WECHAT_PORT", "0")),
        wecom_port=int(os.environ.get("SANDBOX_WECOM_PORT", "0")),
        env=base_config.credential_env(),
    ) as sandbox:
        config = base_config.with_overrides(
            WECHAT_API_BASE=sandbox.wechat_url, WECOM_API_BASE=sandbox.wecom_url
        )
        command.upgrade(alembic_config(config.DATABASE_URL), "head")
        app = create_app(config)
        with app.app_context(), transaction() as session:
            if not demo_data.is_seeded(session):
                summary = demo_data.seed_demo_mall(session, extensions().phone_vault, extensions().mall_tz)
                print(
                    f"Seeded demo mall: {summary.stores} stores, {summary.members} members, "
                    f"{summary.purchases} purchases."
                )

        print_banner(config, sandbox.wechat_url, sandbox.wecom_url, f"http://{host}:{port}")
        app.run(host=host, port=port, use_reloader=False, threaded=True)


def print_banner(config: Config, wechat_url: str, wecom_url: str, base: str) -> None:
    admin = {"username": demo_data.DEMO_ADMIN_USERNAME, "password": demo_data.DEMO_ADMIN_PASSWORD}
    signup = {"phone_code": "sandbox-phone:13800138000", "consent_version": config.PRIVACY_POLICY_VERSION}
    lines = [
        f"MallMember is running: {config.MALL_NAME}",
        f"  API             {base}/api",
        f"  API docs        {base}/api/docs   (spec: {base}/api/openapi.json)",
        f"  WeChat sandbox  {wechat_url}",
        f"  WeCom sandbox   {wecom_url}",
        f"  Database        {config.DATABASE_URL}",
        "",
        "Demo logins:",
        f"  operator  POST /api/admin/v1/auth/login  {json.dumps(admin)}",
        '  staff     POST /api/staff/v1/auth/login  {"code": "sandbox:staff01"}',
        "            (advisors: sandbox:advisor01 ... sandbox:advisor20)",
        '  shopper   POST /api/mp/v1/auth/login     {"code": "sandbox:<any-openid>"}',
        f"            then POST /api/mp/v1/members with {json.dumps(signup)}",
    ]
    print("\n" + "\n".join(lines) + "\n", flush=True)


if __name__ == "__main__":
    main()
