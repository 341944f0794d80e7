"""`make serve`: production mode on one machine. Migrate, then run gunicorn (gunicorn.conf.py) and the
scheduler (`flask scheduler`) side by side, forwarding SIGTERM/SIGINT to both and waiting for them to
stop gracefully; if either dies, the other is stopped and this exits non-zero (let the supervisor,
systemd or Docker, restart the lot).

    python scripts/serve.py                 # migrate, API and scheduler
    python scripts/serve.py --no-scheduler  # an API replica (the scheduler runs elsewhere)
    python scripts/serve.py --no-migrate    # migrations already run by the deploy
    python scripts/serve.py --migrate-only  # the deploy's one-shot migration step

Settings come from the environment (and .env); see .env.example and gunicorn.conf.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from alembic import command  # noqa: E402
from dotenv import load_dotenv  # noqa: E402

from app.cli import alembic_config  # noqa: E402
from app.config import Config  # noqa: E402

GUNICORN = [sys.executable, "-m", "gunicorn", "-c", str(ROOT / "gunicorn.conf.py"), "wsgi:app"]
SCHEDULER = [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"]


def migrate(config: Config) -> None:
    """Alembic to head. Migrations are additive, so the old release keeps working meanwhile."""
    command.upgrade(alembic_config(config.DATABASE_URL), "head")


def fresh_metrics_dir() -> None:
    """The workers' shared Prometheus directory, emptied: files of a previous run would be added in."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    shutil.rmtree(directory, ignore_errors=True)
    Path(directory).mkdir(parents=True)


def supervise(commands: list[list[str]]) -> int:
    """Run `commands`; on a signal pass it on to each and wait; if one exits, stop the others."""
    children = [subprocess.Popen(argv, cwd=ROOT) for argv in commands]
    stopping: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while all(child.poll() is None for child in children) and not stopping:
        time.sleep(0.2)
    if not stopping:  # one died on its own: take the others down too
        forward(signal.SIGTERM, None)
    codes = [child.wait() for child in children]
    if stopping and all(code in (0, -signal.SIGTERM, -signal.SIGINT) for code in codes):
        return 0
    return next((code for code in codes if code), 1) or 1


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--no-scheduler", action="store_true", help="API only")
    parser.add_argument("--no-migrate", action="store_true", help="do not run the migrations first")
    parser.add_argument("--migrate-only", action="store_true", help="run the migrations and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    load_dotenv(ROOT / ".env")
    config = Config.from_env()
    if not args.no_migrate:
        migrate(config)
        print("migrations at head", flush=True)
    if args.migrate_only:
        return 0
    fresh_metrics_dir()
    return supervise([GUNICORN] if args.no_scheduler else [GUNICORN, SCHEDULER])


if __name__ == "__main__":
    sys.exit(main())
