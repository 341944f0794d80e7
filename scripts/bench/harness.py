"""What every HTTP benchmark here shares: the app under gunicorn, a free port, a MariaDB check, logging."""

from __future__ import annotations

import compileall
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import benchdb
import cpu
from sqlalchemy.engine import make_url

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent.parent
# Database hosts on this machine, whose server's CPU time can be read from /proc.
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", None}


def log(message: str) -> None:
    print(f"# {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    pid: int
    port: int
    base_url: str
    log_path: Path

    def unhandled_errors(self) -> Counter[str]:
        """Requests that ended in a 500 so far, by the exception that caused them (from the server log)."""
        errors: Counter[str] = Counter()
        expecting = False
        for line in self.log_path.read_text(errors="replace").splitlines():
            if "ERROR app.errors unhandled error" in line:
                expecting = True
            elif expecting and not line.startswith((" ", "\t")) and "Error" in line.split(":", 1)[0]:
                errors[line[:120]] += 1
                expecting = False
        return errors

    def report_unhandled_errors(self, side: str) -> bool:
        """Log the 500s seen; keep the log if there were any. True if there were."""
        server_errors = self.unhandled_errors()
        for error, count in server_errors.most_common():
            log(f"{side}: {count} x HTTP 500: {error}")
        return bool(server_errors)


@contextmanager
def gunicorn(
    database_url: str,
    *,
    workers: int,
    threads: int,
    secret_key: str,
    redis_url: str | None = None,
    with_ping: bool = False,
) -> Iterator[Server]:
    """The app under gunicorn (gthread) as a subprocess, logging to a temporary file; stopped afterwards.

    Without `redis_url` the app runs without Redis, whatever the environment says. `with_ping` serves
    bench_wsgi:app instead of wsgi:app: the same app plus `GET /bench/ping`.
    The log is deleted on the way out unless it recorded an HTTP 500."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "APP_ENV": "development",
        "SECRET_KEY": secret_key,
        "REDIS_URL": redis_url or "",
        **benchdb.UNLIMITED,
        # gunicorn.conf.py recycles a worker every ~5,000 requests (a guard against leaks): during a
        # round that is a cold worker the CPU meter does not know, so a round with one in it measured
        # a third less throughput and negative CPU per request. Recycling is off while we measure.
        "WEB_MAX_REQUESTS": "0",
    }
    log_file = tempfile.NamedTemporaryFile(prefix="bench-gunicorn-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--worker-class=gthread",
            f"--workers={workers}",
            f"--threads={threads}",
            f"--bind=127.0.0.1:{port}",
            "--worker-tmp-dir=/dev/shm",
            "--log-level=warning",
            *([f"--pythonpath={BENCH_DIR}", "bench_wsgi:app"] if with_ping else ["wsgi:app"]),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(
        pid=process.pid, port=port, base_url=f"http://127.0.0.1:{port}", log_path=Path(log_file.name)
    )
    try:
        wait_until_serving(server.base_url, process, log_file.name)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log_file.close()
        if server.unhandled_errors():
            log(f"server log kept at {server.log_path}")
        else:
            server.log_path.unlink(missing_ok=True)


def wait_until_serving(base_url: str, process: subprocess.Popen[bytes], log_path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"gunicorn exited with {process.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(base_url + "/api/openapi.json", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    raise SystemExit(f"gunicorn did not start serving within 60 s; see {log_path}")


def compile_project() -> None:
    """Write the project's bytecode, as the production image does (Dockerfile), so that the timed commands
    start as they do there instead of compiling ~180 modules first (PYTHONDONTWRITEBYTECODE may be set)."""
    for package in ("app", "miniprogram_api", "wecom"):
        compileall.compile_dir(PROJECT_ROOT / package, quiet=1)
    compileall.compile_file(PROJECT_ROOT / "wsgi.py", quiet=1)


def ensure_mariadb(database_url: str) -> str:
    """The server's version; a clear message if it is not reachable."""
    url = make_url(database_url)
    try:
        connection = benchdb.connect_server(url)
    except Exception as exc:  # any failure to connect ends the run, with a hint
        raise SystemExit(
            f"cannot connect to MariaDB at {url.host}:{url.port or 3306} ({exc}); start it with\n"
            "  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
        ) from exc
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
            row = cursor.fetchone()
            return str(row[0]) if row else "?"
    finally:
        connection.close()


BUFFER_POOL_PAGES = (
    "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
    "WHERE VARIABLE_NAME IN ('INNODB_BUFFER_POOL_PAGES_DIRTY', 'INNODB_BUFFER_POOL_PAGES_TOTAL')"
)


def settle_innodb(database_url: str, *, dirty_share: float = 0.02, timeout: float = 180.0) -> None:
    """Have InnoDB write back what the previous run changed before the next is timed: a run timed while
    the server still flushes the last one pays for both (nightly.py: nights are a day apart; import.py:
    each side's million rows). MariaDB does not flush on its own when idle, so the dirty-page ceiling is
    dropped to 0 until it is done."""
    url = make_url(database_url)
    connection = benchdb.connect_server(url, database=url.database)
    began = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.innodb_max_dirty_pages_pct")
            (ceiling,) = cursor.fetchone()
            cursor.execute("SET GLOBAL innodb_max_dirty_pages_pct = 0")
            try:
                while time.perf_counter() - began < timeout:
                    cursor.execute(BUFFER_POOL_PAGES)
                    pages = {name.upper().rsplit("_", 1)[-1]: int(value) for name, value in cursor.fetchall()}
                    if pages["DIRTY"] <= dirty_share * pages["TOTAL"]:
                        break
                    time.sleep(1)
            finally:
                cursor.execute("SET GLOBAL innodb_max_dirty_pages_pct = %s", (ceiling,))
    finally:
        connection.close()
    log(f"settled: InnoDB wrote back its dirty pages in {time.perf_counter() - began:.0f} s")


def server_variable(database_url: str, name: str) -> str | None:
    """A global variable of the database server (e.g. max_connections)."""
    connection = benchdb.connect_server(make_url(database_url))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL VARIABLES LIKE %s", (name,))
            row = cursor.fetchone()
            return str(row[1]) if row else None
    finally:
        connection.close()


def database_meter(database_url: str) -> cpu.Meter:
    """The MariaDB server's CPU time, when it runs on this machine."""
    if make_url(database_url).host not in LOCAL_HOSTS:
        return {}
    pid = cpu.find_process("mariadbd")
    return {"MariaDB": lambda: cpu.process_seconds(pid)} if pid else {}


def redis_meter(redis_url: str | None) -> cpu.Meter:
    """The Redis server's CPU time, when the app uses one on this machine."""
    if not redis_url or urlsplit(redis_url).hostname not in LOCAL_HOSTS:
        return {}
    pid = cpu.find_process("redis-server")
    return {"Redis": lambda: cpu.process_seconds(pid)} if pid else {}


def app_cpu_meter(
    server_pid: int, database: cpu.Meter, *, use_wrk: bool, extra: cpu.Meter | None = None
) -> cpu.Meter:
    """CPU of the app side: the gunicorn tree, the database (and `extra` servers), the load generator."""
    return {
        "Python": lambda: cpu.tree_seconds(server_pid),
        **database,
        **(extra or {}),
        "load generator": cpu.waited_children_seconds if use_wrk else cpu.own_seconds,
    }
