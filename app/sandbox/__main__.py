"""Serve the WeChat, WeCom and car-park sandboxes until SIGTERM/SIGINT: `python -m app.sandbox --help`.

Once all listen, one JSON line `{"wechat": url, "wecom": url, "carpark": url}` is printed to stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
from collections.abc import Sequence

from werkzeug.serving import BaseWSGIServer, make_server

from .carpark import create_carpark_app
from .settings import SandboxCredentials
from .state import SandboxState, WeComState
from .wechat import create_wechat_app
from .wecom import create_wecom_app
from .wecom_events import CallbackSigning

# What the app's development settings use (app.config), so that both agree out of the box.
CARPARK_PARK_ID = "sandbox-park-001"
CARPARK_SIGNING_KEY = "dev-only-insecure-secret-change-me-carpark"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = SandboxCredentials.from_env(os.environ)
    parser = argparse.ArgumentParser(
        prog="python -m app.sandbox",
        description="Local fakes of the WeChat mini-program and WeCom server APIs.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--wechat-port", type=int, default=5101, help="0 picks a free port")
    parser.add_argument("--wecom-port", type=int, default=5102, help="0 picks a free port")
    parser.add_argument("--wechat-appid", default=defaults.wechat_appid)
    parser.add_argument("--wechat-secret", default=defaults.wechat_secret)
    parser.add_argument("--wecom-corp-id", default=defaults.wecom_corp_id)
    parser.add_argument("--wecom-secret", default=defaults.wecom_secret)
    parser.add_argument("--wecom-agent-id", default=defaults.wecom_agent_id)
    parser.add_argument("--wecom-callback-token", default=defaults.wecom_callback_token)
    parser.add_argument("--wecom-callback-aes-key", default=defaults.wecom_callback_aes_key)
    parser.add_argument("--carpark-port", type=int, default=5103, help="0 picks a free port")
    parser.add_argument("--carpark-park-id", default=os.environ.get("CARPARK_PARK_ID") or CARPARK_PARK_ID)
    parser.add_argument(
        "--carpark-signing-key", default=os.environ.get("CARPARK_SIGNING_KEY") or CARPARK_SIGNING_KEY
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)

    wechat_app = create_wechat_app(SandboxState(), args.wechat_appid, args.wechat_secret)
    wecom_app = create_wecom_app(
        WeComState(),
        args.wecom_corp_id,
        args.wecom_secret,
        args.wecom_agent_id,
        callback=CallbackSigning(args.wecom_callback_token, args.wecom_callback_aes_key),
    )
    carpark_app = create_carpark_app(args.carpark_park_id, args.carpark_signing_key)
    servers = {
        "wechat": make_server(args.host, args.wechat_port, wechat_app, threaded=True),
        "wecom": make_server(args.host, args.wecom_port, wecom_app, threaded=True),
        "carpark": make_server(args.host, args.carpark_port, carpark_app, threaded=True),
    }
    for name, server in servers.items():
        threading.Thread(target=server.serve_forever, name=f"sandbox-{name}", daemon=True).start()

    # SIGTERM takes the same clean path as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        urls = {name: _base_url(args.host, server) for name, server in servers.items()}
        print(json.dumps(urls), flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers.values():
            server.shutdown()
            server.server_close()


def _base_url(host: str, server: BaseWSGIServer) -> str:
    netloc = f"[{host}]" if ":" in host else host
    return f"http://{netloc}:{server.server_port}"


if __name__ == "__main__":
    main()
