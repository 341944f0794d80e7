"""Load generators and their figures: wrk (preferred) or Python threads, one measurement format."""

from __future__ import annotations

import http.client
import itertools
import json
import math
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

LUA_SCRIPT = Path(__file__).resolve().parent / "earn.lua"
PURCHASE_PATH = "/api/staff/v1/purchases"


@dataclass(frozen=True)
class Measurement:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Traffic:
    """What one purchase request looks like: who, where, how much; receipts are unique per prefix."""

    member_ids: range
    store_ids: list[int]
    low_fen: int = 1_000
    high_fen: int = 80_000


class Worker(Protocol):
    """One client: a connection kept open for the whole run."""

    def one(self, receipt_no: str) -> bool:
        """Do one unit of work; False if it failed."""
        ...

    def close(self) -> None: ...


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return 0.0
    rank = max(math.ceil(fraction * len(sorted_values)) - 1, 0)
    return sorted_values[min(rank, len(sorted_values) - 1)]


def run_threads(
    clients: int, seconds: float, open_worker: Callable[[int], Worker], *, receipt_prefix: str
) -> Measurement:
    """`clients` threads, each with its own worker, calling it back to back for `seconds`.

    A failed call counts as an error and its latency is still recorded.
    """
    workers = [open_worker(n) for n in range(clients)]
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline = 0.0

    def loop(n: int) -> None:
        receipts = (f"{receipt_prefix}-{n}-{i}" for i in itertools.count(1))
        mine = latencies[n]
        start.wait()
        while (began := time.perf_counter()) < deadline:
            ok = False
            try:
                ok = workers[n].one(next(receipts))
            except Exception:  # a benchmark counts failures, it does not stop on them
                ok = False
            mine.append((time.perf_counter() - began) * 1000)
            if not ok:
                errors[n] += 1

    threads = [threading.Thread(target=loop, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.close()
    merged = sorted(itertools.chain.from_iterable(latencies))
    return Measurement(
        requests=len(merged),
        seconds=elapsed,
        p50_ms=percentile(merged, 0.50),
        p99_ms=percentile(merged, 0.99),
        errors=sum(errors),
    )


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    base_url: str,
    token: str,
    traffic: Traffic,
    *,
    clients: int,
    seconds: int,
    receipt_prefix: str,
    threads: int = 1,
) -> Measurement:
    """wrk with `clients` keep-alive connections; earn.lua makes each request body."""
    stores = ",".join(str(store_id) for store_id in traffic.store_ids)
    completed = subprocess.run(
        [
            "wrk",
            f"--threads={threads}",
            f"--connections={clients}",
            f"--duration={seconds}s",
            "--timeout=10s",
            f"--script={LUA_SCRIPT}",
            base_url + PURCHASE_PATH,
            "--",
            token,
            receipt_prefix,
            str(traffic.member_ids[0]),
            str(traffic.member_ids[-1]),
            stores,
            str(traffic.low_fen),
            str(traffic.high_fen),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(
        (line for line in completed.stdout.splitlines() if line.startswith("WRK_RESULT ")),
        None,
    )
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{completed.stdout}\n{completed.stderr}")
    result = json.loads(line.removeprefix("WRK_RESULT "))
    errors = sum(value for key, value in result.items() if key.startswith("errors_"))
    return Measurement(
        requests=result["requests"],
        seconds=result["duration_us"] / 1e6,
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        errors=errors,
    )


class HttpWorker:
    """A keep-alive HTTP/1.1 connection posting purchases (the fallback when wrk is missing)."""

    def __init__(self, host: str, port: int, token: str, traffic: Traffic, seed: int) -> None:
        self._connection = http.client.HTTPConnection(host, port, timeout=10)
        self._headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        self._traffic = traffic
        self._rng = random.Random(seed)

    def one(self, receipt_no: str) -> bool:
        rng, traffic = self._rng, self._traffic
        body = json.dumps(
            {
                "member_id": rng.choice(traffic.member_ids),
                "store_id": rng.choice(traffic.store_ids),
                "receipt_no": receipt_no,
                "amount_fen": rng.randint(traffic.low_fen, traffic.high_fen),
            }
        )
        try:
            self._connection.request("POST", PURCHASE_PATH, body=body, headers=self._headers)
            response = self._connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()  # reconnects on the next request
            return False
        return 200 <= response.status < 300

    def close(self) -> None:
        self._connection.close()


def run_python_client(
    host: str, port: int, token: str, traffic: Traffic, *, clients: int, seconds: int, receipt_prefix: str
) -> Measurement:
    return run_threads(
        clients,
        seconds,
        lambda n: HttpWorker(host, port, token, traffic, seed=n),
        receipt_prefix=receipt_prefix,
    )
