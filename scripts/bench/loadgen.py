"""Load generators and their figures: wrk (preferred) or Python threads, one measurement format;
for a duration (earn.py) or for a fixed number of requests (flash_claim.py)."""

from __future__ import annotations

import http.client
import itertools
import json
import math
import random
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

LUA_SCRIPT = Path(__file__).resolve().parent / "earn.lua"
CLAIM_LUA_SCRIPT = Path(__file__).resolve().parent / "flash_claim.lua"
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
    offered_rate: int = 0,
) -> Measurement:
    """wrk with `clients` keep-alive connections; earn.lua makes each request body.

    With `offered_rate` (requests/s over all clients), each connection waits a random pause
    (mean clients / rate) after each response, like a counter between two customers, so the
    latency measured is service time plus the queueing that rate causes, not a saturated queue.
    """
    stores = ",".join(str(store_id) for store_id in traffic.store_ids)
    script = LUA_SCRIPT
    with tempfile.TemporaryDirectory() as scratch:
        if offered_rate:
            mean_pause_ms = max(1, round(clients * 1000 / offered_rate))
            script = Path(scratch) / "paced.lua"
            script.write_text(
                f'dofile("{LUA_SCRIPT}")\nfunction delay() return math.random(0, {2 * mean_pause_ms}) end\n',
                encoding="utf-8",
            )
        return _run_wrk_purchases(
            base_url, token, traffic, stores, script, clients, seconds, receipt_prefix, threads
        )


def _run_wrk_purchases(
    base_url: str,
    token: str,
    traffic: Traffic,
    stores: str,
    script: Path,
    clients: int,
    seconds: int,
    receipt_prefix: str,
    threads: int,
) -> Measurement:
    completed = subprocess.run(
        [
            "wrk",
            f"--threads={threads}",
            f"--connections={clients}",
            f"--duration={seconds}s",
            "--timeout=10s",
            f"--script={script}",
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
    return _wrk_measurement(completed)


def _wrk_measurement(completed: subprocess.CompletedProcess[str]) -> Measurement:
    """The WRK_RESULT line a script's done() printed; non-2xx/3xx answers and socket errors are errors."""
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


# GET requests over a list of paths in turn (home.py): a shopper's home screen, or the ping.
HOME_LUA_SCRIPT = Path(__file__).resolve().parent / "home.lua"


def run_wrk_get(
    base_url: str, paths: list[str], token_file: Path | None, *, clients: int, seconds: int
) -> Measurement:
    """wrk (one thread, `clients` keep-alive connections) sending GETs to `paths` in turn for `seconds`,
    a new shopper from `token_file` every len(paths) requests (no Authorization without a file)."""
    completed = subprocess.run(
        [
            "wrk",
            "--threads=1",
            f"--connections={clients}",
            f"--duration={seconds}s",
            "--timeout=10s",
            f"--script={HOME_LUA_SCRIPT}",
            base_url,
            "--",
            ",".join(paths),
            str(token_file or ""),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return _wrk_measurement(completed)


class GetWorker:
    """A keep-alive connection sending GETs to `paths` in turn, a random shopper every round
    (the fallback without wrk)."""

    def __init__(self, host: str, port: int, paths: list[str], tokens: list[str], seed: int) -> None:
        self._connection = http.client.HTTPConnection(host, port, timeout=10)
        self._paths = paths
        self._tokens = tokens
        self._rng = random.Random(seed)
        self._sent = 0
        self._headers: dict[str, str] = {}

    def one(self, _key: str) -> bool:
        step = self._sent % len(self._paths)
        if step == 0 and self._tokens:
            self._headers = {"Authorization": f"Bearer {self._rng.choice(self._tokens)}"}
        self._sent += 1
        try:
            self._connection.request("GET", self._paths[step], headers=self._headers)
            response = self._connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException):
            self._connection.close()  # reconnects on the next request
            return False
        return 200 <= response.status < 300

    def close(self) -> None:
        self._connection.close()


def run_python_get(
    host: str, port: int, paths: list[str], tokens: list[str], *, clients: int, seconds: int
) -> Measurement:
    return run_threads(
        clients,
        seconds,
        lambda n: GetWorker(host, port, paths, tokens, seed=2_000 + n),
        receipt_prefix="get",
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


# Fixed-count runs (flash_claim.py): N requests in all from C clients, each with an outcome.
OK_OUTCOMES = frozenset({"issued", "retried", "sold_out", "limit"})


@dataclass(frozen=True)
class CountedRun:
    """A fixed number of requests and what came of each: issued (201), retried (200, same key),
    sold_out and limit (409s that are the expected answers), anything else is an error."""

    measurement: Measurement
    outcomes: dict[str, int]

    def count(self, outcome: str) -> int:
        return self.outcomes.get(outcome, 0)


class CountedWorker(Protocol):
    def one(self, key: str) -> str:
        """Do one request with this unique key; its outcome (see CountedRun)."""
        ...

    def close(self) -> None: ...


def run_counted(
    clients: int, total: int, open_worker: Callable[[int], CountedWorker], *, key_prefix: str
) -> CountedRun:
    """`clients` threads taking request numbers from one counter until `total` requests are done."""
    workers = [open_worker(n) for n in range(clients)]
    numbers = itertools.count(1)  # next() on it is atomic under the GIL
    latencies: list[list[float]] = [[] for _ in range(clients)]
    outcomes: list[Counter[str]] = [Counter() for _ in range(clients)]
    start = threading.Barrier(clients + 1)

    def loop(n: int) -> None:
        mine, seen = latencies[n], outcomes[n]
        start.wait()
        while (number := next(numbers)) <= total:
            began = time.perf_counter()
            try:
                outcome = workers[n].one(f"{key_prefix}-{number:08d}")
            except Exception as exc:  # a benchmark counts failures, it does not stop on them
                outcome = f"error: {type(exc).__name__}"
            mine.append((time.perf_counter() - began) * 1000)
            seen[outcome] += 1

    threads = [threading.Thread(target=loop, args=(n,), daemon=True) for n in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    for worker in workers:
        worker.close()
    merged = sorted(itertools.chain.from_iterable(latencies))
    outcome_total: Counter[str] = sum(outcomes, Counter())
    return CountedRun(
        Measurement(
            requests=len(merged),
            seconds=elapsed,
            p50_ms=percentile(merged, 0.50),
            p99_ms=percentile(merged, 0.99),
            errors=sum(count for outcome, count in outcome_total.items() if outcome not in OK_OUTCOMES),
        ),
        dict(outcome_total),
    )


def claim_outcome(status: int, body: bytes) -> str:
    if status == 201:
        return "issued"
    if status == 200:
        return "retried"
    if status == 409 and b"COUPON_SOLD_OUT" in body:
        return "sold_out"
    if status == 409 and b"COUPON_LIMIT_REACHED" in body:
        return "limit"
    return f"HTTP {status}"


class ClaimHttpWorker:
    """A keep-alive connection claiming as a random shopper each time (the fallback without wrk)."""

    def __init__(self, host: str, port: int, path: str, tokens: list[str], seed: int) -> None:
        self._connection = http.client.HTTPConnection(host, port, timeout=30)
        self._path = path
        self._tokens = tokens
        self._rng = random.Random(seed)

    def one(self, key: str) -> str:
        headers = {
            "Authorization": f"Bearer {self._rng.choice(self._tokens)}",
            "Idempotency-Key": key,
            "Content-Length": "0",
        }
        try:
            self._connection.request("POST", self._path, headers=headers)
            response = self._connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            self._connection.close()  # reconnects on the next request
            return f"error: {type(exc).__name__}"
        return claim_outcome(response.status, body)

    def close(self) -> None:
        self._connection.close()


def run_python_claims(
    host: str, port: int, path: str, tokens: list[str], *, clients: int, total: int, key_prefix: str
) -> CountedRun:
    return run_counted(
        clients,
        total,
        lambda n: ClaimHttpWorker(host, port, path, tokens, seed=1_000 + n),
        key_prefix=key_prefix,
    )


def run_wrk_claims(
    url: str, token_file: Path, *, clients: int, total: int, key_prefix: str, time_limit: int = 300
) -> CountedRun:
    """wrk (one thread, `clients` connections) sending exactly `total` claims (see flash_claim.lua):
    the script stops sending after `total`, and wrk's duration is cut short by SIGINT once the last
    response is in; `time_limit` is only a safety net."""
    process = subprocess.Popen(
        [
            "wrk",
            "--threads=1",
            f"--connections={clients}",
            f"--duration={time_limit}s",
            "--timeout=30s",
            f"--script={CLAIM_LUA_SCRIPT}",
            url,
            "--",
            str(token_file),
            key_prefix,
            str(total),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    outcomes: dict[str, int] | None = None
    for line in process.stdout:
        if line.startswith("FLASH_DONE "):
            outcomes = json.loads(line.removeprefix("FLASH_DONE "))
            process.send_signal(signal.SIGINT)
            break
    rest, stderr = process.communicate(timeout=time_limit + 60)
    if outcomes is None:
        raise RuntimeError(f"wrk did not complete {total} requests within {time_limit} s:\n{rest}\n{stderr}")
    line = next((line for line in rest.splitlines() if line.startswith("WRK_RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{rest}\n{stderr}")
    result = json.loads(line.removeprefix("WRK_RESULT "))
    socket_errors = sum(
        value for key, value in result.items() if key.startswith("errors_") and key != "errors_status"
    )
    counted = {
        "issued": outcomes["issued"],
        "retried": outcomes["retried"],
        "sold_out": outcomes["sold_out"],
        "limit": outcomes["limit"],
        **{f"HTTP {status}": count for status, count in outcomes["other_statuses"].items()},
    }
    if socket_errors:
        counted["error: socket"] = socket_errors
    return CountedRun(
        Measurement(
            requests=result["requests"],
            seconds=result["duration_us"] / 1e6,
            p50_ms=result["p50_us"] / 1000,
            p99_ms=result["p99_us"] / 1000,
            errors=outcomes["other"] + socket_errors,
        ),
        {outcome: count for outcome, count in counted.items() if count},
    )
