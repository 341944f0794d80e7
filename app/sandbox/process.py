"""Run the sandbox servers in a child process and drive them through their control API."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self
from urllib.parse import urlencode

import requests

from .settings import SandboxCredentials

Server = Literal["wechat", "wecom", "carpark"]

# The directory holding the `app` package, so `-m app.sandbox` resolves from any cwd.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONTROL_TIMEOUT_SECONDS = 5.0


class SandboxProcess:
    """A running `python -m app.sandbox`; stop it with `stop()` or by using it as a context manager."""

    def __init__(
        self,
        process: subprocess.Popen[str],
        urls: Mapping[Server, str],
        credentials: SandboxCredentials,
        stderr: IO[bytes],
    ) -> None:
        self.wechat_url = urls["wechat"]
        self.wecom_url = urls["wecom"]
        self.carpark_url = urls["carpark"]
        self.credentials = credentials
        self._process = process
        self._stderr = stderr
        self._http = requests.Session()

    def url(self, server: Server) -> str:
        return {"wechat": self.wechat_url, "wecom": self.wecom_url, "carpark": self.carpark_url}[server]

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the child (killing it if it lingers) and release its resources; idempotent."""
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._http.close()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._stderr.close()

    def reset(self) -> None:
        """Forget tokens, faults, messages and logged requests on every server, and the car park's cars."""
        for server in ("wechat", "wecom", "carpark"):
            self._control(server, "POST", "reset")

    def inject_fault(
        self,
        server: Server,
        path: str,
        errcode: int = -1,
        errmsg: str | None = None,
        times: int | None = 1,
        *,
        kind: str | None = None,
        http_status: int | None = None,
        delay_seconds: float = 0,
    ) -> None:
        """Make the next `times` requests to `path` ("*": any API path; `times=None`: every one until
        `clear_faults`) fail with `errcode`, before any other check; with `http_status`, with that HTTP
        error instead; after `delay_seconds` (longer than the client's timeout: a timeout, and the
        request is not carried out). `kind="lost_answer"`: carried out, then a 504 instead of the answer.
        On the car park, `errcode` is its business code (kind "error")."""
        fault: dict[str, Any] = {"path": path, "errcode": errcode}
        if times is None:
            fault["until_cleared"] = True
        else:
            fault["times"] = times
        if kind is not None:
            fault["kind"] = kind
        if errmsg is not None:
            fault["errmsg"] = errmsg
        if http_status is not None:
            fault["http_status"] = http_status
        if delay_seconds:
            fault["delay_seconds"] = delay_seconds
        if server == "carpark":
            self._control(server, "POST", "faults", _carpark_fault(fault))
        else:
            self._control(server, "POST", "faults", fault)

    def clear_faults(self, server: Server, path: str | None = None) -> int:
        """Drop the faults queued on `server` for `path` ("*" included), or all; how many were queued."""
        suffix = f"faults?{urlencode({'path': path})}" if path else "faults"
        cleared: int = self._control(server, "DELETE", suffix)["cleared"]
        return cleared

    def faults(self, server: Server) -> dict[str, Any]:
        """`{"faults": {path: [fault, ...]}, "fired": {kind: count}}` of `server`."""
        return self._control(server, "GET", "faults")

    def expire_tokens(self, server: Server) -> None:
        """Expire every access token `server` has issued so far."""
        self._control(server, "POST", "expire-tokens")

    def messages(self, server: Server) -> list[dict[str, Any]]:
        """Messages `server` accepted for sending: each request body plus its `msgid`."""
        messages: list[dict[str, Any]] = self._control(server, "GET", "messages")["messages"]
        return messages

    def requests(self, server: Server) -> list[dict[str, Any]]:
        """API requests `server` received: method, path, query, json, headers and arrival time."""
        log: list[dict[str, Any]] = self._control(server, "GET", "requests")["requests"]
        return log

    # WeCom: the corp directory, contact ways, external contacts and callbacks

    def add_wecom_users(self, users: Mapping[str, str]) -> None:
        """Add corp users (userid -> name). Once any exists, other userids are unknown to WeCom."""
        self._control("wecom", "POST", "users", {"users": dict(users)})

    def wecom_duplicates(self) -> list[dict[str, Any]]:
        """Repeats of a message/send that its duplicate check answered without delivering again."""
        duplicates: list[dict[str, Any]] = self._control("wecom", "GET", "duplicates")["duplicates"]
        return duplicates

    def wecom_contact_ways(self) -> list[dict[str, Any]]:
        """Contact ways (联系我) created through `externalcontact/add_contact_way`."""
        ways: list[dict[str, Any]] = self._control("wecom", "GET", "contact-ways")["contact_ways"]
        return ways

    def wecom_event(
        self,
        change_type: str,
        userid: str,
        *,
        unionid: str | None = None,
        external_userid: str | None = None,
        callback_url: str | None = None,
        **options: Any,
    ) -> dict[str, Any]:
        """Change an external contact of `userid` and send the signed, encrypted
        `change_external_contact` callback to `callback_url`; without a URL, only return it
        (`answer["callback"]` has its `url` and `body`). Options: name, state, timestamp."""
        payload = {
            "change_type": change_type,
            "userid": userid,
            "unionid": unionid,
            "external_userid": external_userid,
            "callback_url": callback_url,
            "deliver": callback_url is not None,
            **options,
        }
        response = self._http.post(
            f"{self.wecom_url}/sandbox/events", json=payload, timeout=CONTROL_TIMEOUT_SECONDS * 2
        )
        answer: dict[str, Any] = response.json()
        if response.status_code != 200:
            raise RuntimeError(f"sandbox event failed: {answer}")
        return answer

    # The car park

    def park_car(self, plate: str, minutes_ago: int) -> None:
        """A car with `plate` entered the lot `minutes_ago` minutes ago (re-parking moves its entry)."""
        self._control("carpark", "POST", "cars", {"plateNo": plate, "entryMinutesAgo": minutes_ago})

    def car_leaves(self, plate: str) -> None:
        self._control("carpark", "DELETE", f"cars/{plate}")

    def set_tariff(self, **tariff: int) -> None:
        """Change the tariff: freeMinutes, hourlyFen, dailyCapFen (defaults 30, 500, 5000)."""
        self._control("carpark", "POST", "tariff", tariff)

    def carpark_fault(self, path: str, kind: str, times: int = 1, **options: Any) -> None:
        """Make the next `times` requests to `path` ("*": any) fail: kind "business" (code, msg),
        "http_error" (httpStatus), "timeout" (delaySeconds; the request is still carried out unless
        process=False) or "lost_answer" (carried out, a 504 comes back); untilCleared=True: every one."""
        self._control("carpark", "POST", "faults", {"path": path, "kind": kind, "times": times, **options})

    def carpark_discounts(self) -> list[dict[str, Any]]:
        """Discounts the car park accepted, one per order number."""
        discounts: list[dict[str, Any]] = self._control("carpark", "GET", "discounts")["discounts"]
        return discounts

    def _control(
        self,
        server: Server,
        method: str,
        action: str,
        payload: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        response = self._http.request(
            method,
            f"{self.url(server)}/sandbox/{action}",
            json=payload,
            timeout=CONTROL_TIMEOUT_SECONDS,
        )
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox_process(
    *,
    wechat_port: int = 0,
    wecom_port: int = 0,
    carpark_port: int = 0,
    env: Mapping[str, str] | None = None,
    timeout: float = 15.0,
) -> SandboxProcess:
    """Start the sandbox servers in a child process and wait until all listen.

    `env` is layered over `os.environ` for the child; use it to change the accepted
    credentials (WECHAT_APPID, WECHAT_SECRET, WECOM_CORP_ID, WECOM_SECRET, WECOM_AGENT_ID,
    WECOM_CALLBACK_TOKEN, WECOM_CALLBACK_AES_KEY, CARPARK_PARK_ID, CARPARK_SIGNING_KEY).
    Port 0 picks a free port. Raises RuntimeError if the child fails to start in `timeout` seconds.
    """
    child_env = {**os.environ, **(env or {})}
    command = [
        sys.executable, "-m", "app.sandbox",
        "--wechat-port", str(wechat_port),
        "--wecom-port", str(wecom_port),
        "--carpark-port", str(carpark_port),
    ]  # fmt: skip
    # A file rather than a pipe: nobody drains stderr while the sandbox runs, and a full
    # pipe would block the child. SandboxProcess.stop() closes it.
    stderr = tempfile.TemporaryFile()  # noqa: SIM115
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        urls = _read_urls(process, timeout)
    except RuntimeError as error:
        _reap(process)
        output = _read_all(stderr)
        raise RuntimeError(f"{error}; its stderr:\n{output}") from None
    except BaseException:
        _reap(process)
        stderr.close()
        raise
    return SandboxProcess(process, urls, SandboxCredentials.from_env(child_env), stderr)


def _carpark_fault(fault: dict[str, Any]) -> dict[str, Any]:
    """`inject_fault`'s fields as the car park's control API names them."""
    kind = fault.get("kind") or (
        "http_error" if "http_status" in fault and "delay_seconds" not in fault
        else "timeout" if "delay_seconds" in fault and fault["errcode"] == -1
        else "business"
    )  # fmt: skip
    translated = {
        "path": fault["path"],
        "kind": "business" if kind == "error" else kind,
        "code": fault["errcode"],
        "untilCleared": fault.get("until_cleared", False),
        "times": fault.get("times", 1),
    }
    for ours, theirs in (("errmsg", "msg"), ("http_status", "httpStatus"), ("delay_seconds", "delaySeconds")):
        if ours in fault:
            translated[theirs] = fault[ours]
    if "delay_seconds" not in fault and kind != "timeout":
        translated["delaySeconds"] = 0
    return translated


def _read_urls(process: subprocess.Popen[str], timeout: float) -> dict[Server, str]:
    assert process.stdout is not None
    line = _read_line(process.stdout, timeout)
    if line is None:
        raise RuntimeError(f"sandbox did not start within {timeout}s")
    if not line:
        raise RuntimeError(f"sandbox exited with code {process.wait()} before it started")
    try:
        urls = json.loads(line)
        return {"wechat": str(urls["wechat"]), "wecom": str(urls["wecom"]), "carpark": str(urls["carpark"])}
    except (ValueError, KeyError, TypeError):
        raise RuntimeError(f"sandbox printed an unexpected first line: {line!r}") from None


def _read_line(stream: IO[str], timeout: float) -> str | None:
    """The next line of `stream` ("" at EOF), or None if none arrives within `timeout` seconds."""
    lines: queue.Queue[str] = queue.Queue(maxsize=1)
    # Pipes cannot be polled portably, so a daemon thread does the blocking read.
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()
    try:
        return lines.get(timeout=timeout)
    except queue.Empty:
        return None


def _reap(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _read_all(stderr: IO[bytes]) -> str:
    """Everything written to `stderr` so far; the file is closed afterwards."""
    with stderr:
        stderr.seek(0)
        return stderr.read().decode(errors="replace")
