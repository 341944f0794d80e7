"""`make screenshots`: the console's main pages with the demo mall, as PNGs in docs/screenshots/.

Builds a fresh demo mall (`flask seed-demo`'s) in a throwaway SQLite database, runs the nightly
refresh for today and computes the KPI snapshots of the 29 days before, runs a few scheduler jobs (so
the pending demo campaign is issued and the job runs page has rows), serves the app on a free port,
signs in as the demo admin in Debian's Chromium (through Playwright, as the browser tests do), reveals
one member's phone (so the audit log has a row) and saves one full-page PNG per page of PAGES. Add a
page by adding a line to PAGES, or pick pages on the command line:

    .venv/bin/python scripts/screenshots.py                      # every page of PAGES
    .venv/bin/python scripts/screenshots.py dashboard=/console/  # just these (name=path)

Chinese text needs a CJK font in the system (Debian: `apt-get install fonts-noto-cjk`; `make
screenshots` installs it when it can), otherwise the glyphs come out as boxes.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from alembic import command
from flask import Flask
from playwright.sync_api import Page, sync_playwright
from werkzeug.serving import make_server

from app import create_app, demo_data, jobs, nightly
from app.cli import alembic_config
from app.config import Config
from app.db import bound_database, transaction
from app.extensions import extensions
from app.mall_time import MallTime
from app.services import kpis

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
TREND_DAYS = 30
JOBS = ("expire-points", "expire-coupons", "run-campaigns")
# The member whose 360 page is shown (the demo is deterministic: this one has purchases and a tier change).
MEMBER_ID = 7

# (file name without .png, path). The login page is taken signed out, every other one signed in.
PAGES: list[tuple[str, str]] = [
    ("login", "/console/login"),
    ("dashboard", "/console/"),
    ("operators", "/console/operators"),
    ("members", "/console/members"),
    ("member", f"/console/members/{MEMBER_ID}"),
    ("rules", "/console/rules"),
    ("coupons", "/console/coupons"),
    ("coupon_form", "/console/coupons/new"),
    ("campaigns", "/console/campaigns"),
    ("tags", "/console/tags"),
    # The demo's rule tag (created before the nightly refresh adds the system tags): its conditions
    # in the builder, and the live count the page loads.
    ("tag_builder", "/console/tags/1/edit"),
    ("segments", "/console/segments"),
    ("advisors", "/console/advisors"),
    ("scenes", "/console/scenes"),
    ("audit", "/console/audit"),
    ("jobs", "/console/jobs"),
]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("pages", nargs="*", metavar="NAME=PATH", help="pages to take (default: PAGES)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"directory for the PNGs (default: {OUT})")
    args = parser.parse_args()
    pages = [(name, path) for name, _, path in (page.partition("=") for page in args.pages)] or PAGES
    if any(not name or not path.startswith("/") for name, path in pages):
        parser.error("pages are NAME=PATH, e.g. dashboard=/console/")
    args.out.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="mm-screenshots-") as scratch:
        app = demo_app(f"sqlite:///{scratch}/demo.db")
        try:
            with serving(app) as base_url:
                for path in take(base_url, pages, args.out):
                    print(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        finally:
            bound_database(app).engine.dispose()


def demo_app(database_url: str) -> Flask:
    """The app on a new database holding the demo mall and a month of KPI snapshots."""
    command.upgrade(alembic_config(database_url), "head")
    app = create_app(Config.from_env({}, DATABASE_URL=database_url))
    with app.app_context():
        tz = extensions().mall_tz
        with transaction() as session:
            demo_data.seed_demo_mall(session, extensions().phone_vault, tz)
        now = MallTime.current(tz)
        nightly.refresh(app, now)  # member statistics, segments, tags, today's KPIs and distributions
        with transaction() as session:
            for days_ago in range(1, TREND_DAYS):
                kpis.compute_day(session, now.today - timedelta(days=days_ago), now)
    for job in JOBS:
        jobs.run_job(app, job, runner="screenshots")
    return app


@contextmanager
def serving(app: Flask) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def take(base_url: str, pages: list[tuple[str, str]], out: Path) -> Iterator[Path]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        context = browser.new_context(
            locale="zh-CN", timezone_id="Asia/Shanghai", viewport={"width": 1280, "height": 800}
        )
        page = context.new_page()
        signed_in = False
        for name, path in sorted(pages, key=lambda page: page[1] != "/console/login"):
            if path != "/console/login" and not signed_in:
                sign_in(page, base_url)
                reveal_a_phone(page, base_url)
                signed_in = True
            page.goto(base_url + path, wait_until="networkidle")
            # ECharts animates its first drawing; let it finish.
            page.wait_for_timeout(1_200)
            target = out / f"{name}.png"
            page.screenshot(path=str(target), full_page=True)
            yield target
        browser.close()


def sign_in(page: Page, base_url: str) -> None:
    page.goto(f"{base_url}/console/login", wait_until="networkidle")
    page.fill("input[name=username]", demo_data.DEMO_ADMIN_USERNAME)
    page.fill("input[name=password]", demo_data.DEMO_ADMIN_PASSWORD)
    with page.expect_navigation(wait_until="networkidle"):
        page.click("form button[type=submit]")
    if not page.url.endswith("/console/"):
        raise SystemExit(f"could not sign in as the demo admin: at {page.url}")


def reveal_a_phone(page: Page, base_url: str) -> None:
    """What an admin does now and then, and the audit log records."""
    page.goto(f"{base_url}/console/members/{MEMBER_ID}", wait_until="networkidle")
    page.click("text=显示完整手机号")
    page.wait_for_selector("#member-phone.revealed-phone")


if __name__ == "__main__":
    main()
