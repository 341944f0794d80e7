"""The deployment files agree with the code: docker-compose.yml's services and their wiring, the
Dockerfile's commands and the scripts they name, gunicorn.conf.py's worker model. Docker itself is
not run here; these catch a renamed flag, a service pointed at the wrong host, or a root container."""

from __future__ import annotations

import gc
import importlib.util
import re
import shlex
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from app import create_app
from app.config import PROJECT_ROOT, Config

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text(encoding="utf-8")


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem.replace(".", "_"), path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def service(name: str) -> dict[str, Any]:
    return dict(COMPOSE["services"][name])


def dockerfile_instruction(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines() if line.startswith(f"{name} ")]


def check_command(argv: list[str]) -> None:
    """`argv` is something the image can run: scripts/serve.py with flags it takes, or a flask command."""
    if argv[:2] == ["python", "scripts/serve.py"]:
        serve = load_module(PROJECT_ROOT / "scripts" / "serve.py")
        serve.argument_parser().parse_args(argv[2:])  # SystemExit on an unknown flag
    elif argv[:3] == ["flask", "--app", "wsgi"]:
        app = create_app(Config.from_env({}))
        assert argv[3] in app.cli.list_commands(app.app_context()), argv  # type: ignore[arg-type]
    else:
        pytest.fail(f"unexpected command {argv}")


def test_compose_runs_mysql_redis_a_migration_the_api_and_the_scheduler() -> None:
    assert set(COMPOSE["services"]) == {"mysql", "redis", "migrate", "app", "scheduler"}
    assert service("mysql")["image"].startswith("mysql:8")
    assert {
        "--character-set-server=utf8mb4",
        "--collation-server=utf8mb4_unicode_ci",
        "--transaction-isolation=READ-COMMITTED",
    } <= set(service("mysql")["command"])
    assert any(arg.startswith("--log-bin") for arg in service("mysql")["command"])  # binlog for PITR


@pytest.mark.parametrize("name", ["migrate", "app", "scheduler"])
def test_app_services_reach_mysql_and_redis_by_service_name(name: str) -> None:
    env = service(name)["environment"]
    mysql_env = service("mysql")["environment"]

    assert env["APP_ENV"] == "production"
    assert re.fullmatch(r"mysql\+pymysql://mallmember:.+@mysql:3306/mallmember", env["DATABASE_URL"])
    assert mysql_env["MYSQL_DATABASE"] == "mallmember" and mysql_env["MYSQL_USER"] == "mallmember"
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert "build" in service(name)
    check_command(service(name)["command"])


def test_workers_start_after_the_migration_has_run() -> None:
    for name in ("app", "scheduler"):
        depends = service(name)["depends_on"]
        assert depends["migrate"] == {"condition": "service_completed_successfully"}
    assert service("migrate")["command"] == ["python", "scripts/serve.py", "--migrate-only"]
    assert "--no-migrate" in service("app")["command"]
    assert "--no-scheduler" in service("app")["command"]


def test_the_app_is_probed_on_readyz_and_shares_the_imports_with_the_scheduler() -> None:
    assert "/readyz" in " ".join(service("app")["healthcheck"]["test"])
    assert service("app")["volumes"] == service("scheduler")["volumes"]
    imports = service("app")["environment"]["IMPORT_DIR"]
    assert any(volume.endswith(f":{imports}") for volume in service("app")["volumes"])


def test_containers_stop_after_the_graceful_periods_not_before() -> None:
    def seconds(text: str) -> int:
        return int(text.rstrip("s"))

    conf = load_module(PROJECT_ROOT / "gunicorn.conf.py")
    scheduler_grace = int(service("scheduler")["environment"]["SCHEDULER_STOP_GRACE_SECONDS"])
    assert seconds(service("app")["stop_grace_period"]) > conf.graceful_timeout
    assert seconds(service("scheduler")["stop_grace_period"]) > scheduler_grace


def test_the_image_is_python_3_11_slim_non_root_and_runs_the_api_like_compose() -> None:
    assert dockerfile_instruction("FROM") == ["python:3.11-slim"]
    assert any("pip install -r requirements.txt" in run for run in dockerfile_instruction("RUN"))
    [user] = dockerfile_instruction("USER")
    assert user not in {"root", "0"}
    [cmd] = dockerfile_instruction("CMD")
    argv = [str(part) for part in yaml.safe_load(cmd)]
    assert argv == service("app")["command"]
    check_command(argv)


def test_make_serve_runs_the_same_script() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text(encoding="utf-8")
    recipe = re.search(r"^serve:.*\n\t(.+)$", makefile, re.M)
    assert recipe, "no serve target"
    assert shlex.split(recipe.group(1))[1:] == ["scripts/serve.py"]


def test_gunicorn_runs_threaded_preloaded_workers_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    monkeypatch.setenv("WEB_THREADS", "12")
    conf = load_module(PROJECT_ROOT / "gunicorn.conf.py")

    assert (conf.workers, conf.threads, conf.worker_class, conf.preload_app) == (3, 12, "gthread", True)
    assert conf.max_requests > 0 and 0 < conf.max_requests_jitter < conf.max_requests
    assert conf.timeout > conf.graceful_timeout > 0
    monkeypatch.delenv("WEB_CONCURRENCY")
    assert load_module(PROJECT_ROOT / "gunicorn.conf.py").workers >= 2


def test_workers_listen_on_their_own_sockets_and_the_api_container_migrates_a_recycled_backlog() -> None:
    conf = load_module(PROJECT_ROOT / "gunicorn.conf.py")

    assert conf.reuse_port is True
    assert service("app")["sysctls"]["net.ipv4.tcp_migrate_req"] == 1


def test_the_preloaded_heap_is_frozen_before_workers_are_forked() -> None:
    """Full collections in a worker then skip the app's ~200,000 startup objects (no 150 ms pauses).
    This process has imported the app like gunicorn's master when the hook runs."""
    conf = load_module(PROJECT_ROOT / "gunicorn.conf.py")
    frozen_before = gc.get_freeze_count()
    try:
        conf.when_ready(server=None)

        assert gc.get_freeze_count() - frozen_before > 50_000
    finally:
        gc.unfreeze()
