"""gunicorn as gunicorn.conf.py runs it, on a real port: how connections reach the workers.

On one shared listening socket the worker that wakes first accepts a whole burst of keep-alive
connections and keeps them; with SO_REUSEPORT each worker has a socket of its own and the kernel
spreads new connections over them. Read from /proc (Linux, as production)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.config import PROJECT_ROOT
from tests.network import free_port

pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads sockets from /proc")


@contextmanager
def gunicorn(tmp_path: Path, **environ: str) -> Iterator[tuple[int, int]]:
    """(master pid, port) of gunicorn.conf.py's server with two workers, until the block ends."""
    port = free_port()
    env = {
        **os.environ,
        "BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "2",
        "APP_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'serving.db'}",
        "REDIS_URL": "",
        **environ,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_workers(server, port, count=2)
        yield server.pid, port
    finally:
        server.terminate()
        server.wait(timeout=30)


def wait_for_workers(server: subprocess.Popen[bytes], port: int, *, count: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert server.poll() is None, "gunicorn exited"
        if len(workers(server.pid)) == count and listening_sockets(port) and serves(port):
            return
        time.sleep(0.1)
    pytest.fail("gunicorn did not start its workers")


def serves(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def workers(master: int) -> list[int]:
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def listening_sockets(port: int) -> set[str]:
    """Inodes of the TCP sockets listening on `port` (any address)."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port == port and fields[3] == "0A":  # TCP_LISTEN
            inodes.add(fields[9])
    return inodes


def sockets_of(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def test_each_worker_listens_on_a_socket_of_its_own(tmp_path: Path) -> None:
    with gunicorn(tmp_path) as (master, port):
        listeners = listening_sockets(port)
        per_worker = [sockets_of(pid) & listeners for pid in workers(master)]
        masters = sockets_of(master) & listeners

    assert len(listeners) == 2
    assert all(len(sockets) == 1 for sockets in per_worker)
    assert per_worker[0] != per_worker[1]
    assert masters == set()


def test_web_reuse_port_0_shares_the_masters_socket(tmp_path: Path) -> None:
    with gunicorn(tmp_path, WEB_REUSE_PORT="0") as (master, port):
        listeners = listening_sockets(port)
        per_worker = [sockets_of(pid) & listeners for pid in workers(master)]
        masters = sockets_of(master) & listeners

    assert len(listeners) == 1
    assert per_worker == [listeners, listeners]
    assert masters == listeners
