"""The car park's open API (停车场系统开放接口), behind one adapter.

Car-park vendors (科拓, 捷顺, 蓝卡 …) differ in paths and field names but share a shape: JSON
bodies carrying the park id, signed with HMAC-SHA256 under the park's key over `body + timestamp`,
and answers `{"code": 0 | <vendor code>, "msg": ..., "data": ...}` with HTTP 200. Another
vendor means another implementation of these three calls, not changes elsewhere.

Outcomes of telling the car park about a payment are kept apart on purpose:
- `CarParkRejected`: it answered and said no; nothing happened there.
- `CarParkNotReached`: the request never left (connection refused): nothing happened there.
- `CarParkNoAnswer`: timeout or HTTP 5xx: it may or may not have applied it; ask later.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from app.errors import DependencyUnavailable, DomainError
from app.metrics import dependency_error
from app.request_ids import propagate_request_id

log = logging.getLogger(__name__)

CAR_NOT_IN_LOT = 2001
FEE_MISMATCH = 2002
ORDER_NOT_FOUND = 2004


class CarParkUnavailable(DependencyUnavailable):
    message = "停车场系统暂时无法连接，请稍后再试"
    dependency = "carpark"


class CarNotInLot(DomainError):
    code, status, message = "PARKING_CAR_NOT_FOUND", 404, "未查询到该车辆的在场记录，请确认车辆已入场"


class CarParkError(Exception):
    """A call to the car park that did not succeed."""


class CarParkRejected(CarParkError):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"car park refused: {code} {msg}")
        self.code = code
        self.msg = msg

    @property
    def fee_changed(self) -> bool:
        """The car park's fee is no longer the one we quoted."""
        return self.code == FEE_MISMATCH


class CarParkNotReached(CarParkError):
    """The request was never delivered."""


class CarParkNoAnswer(CarParkError):
    """The request may have been carried out; the answer was lost."""


@dataclass(frozen=True)
class ParkingFee:
    plate: str
    entry_time: datetime  # aware, UTC
    parking_minutes: int
    total_fee_fen: int
    # The fee once `free_minutes` are taken off the time parked.
    free_minutes: int
    fee_after_minutes_fen: int


@dataclass(frozen=True)
class DiscountNotice:
    """What we tell the car park: this much of this car's current fee is paid by the mall."""

    order_no: str
    plate: str
    total_fee_fen: int
    discount_fen: int
    discount_minutes: int

    @property
    def pay_fen(self) -> int:
        return self.total_fee_fen - self.discount_fen


class PaymentState(enum.StrEnum):
    APPLIED = "applied"
    NOT_FOUND = "not_found"


class CarParkClient:
    def __init__(self, *, api_base: str, park_id: str, signing_key: str, timeout: float) -> None:
        self.api_base = api_base.rstrip("/")
        self.park_id = park_id
        self._key = signing_key.encode()
        self._timeout = timeout
        self._http = propagate_request_id(requests.Session())

    def query_fee(self, plate: str, *, free_minutes: int = 0) -> ParkingFee:
        """The car's fee now. Raises CarNotInLot, or CarParkUnavailable for any other failure."""
        try:
            data = self._call("/api/v1/parking/fee", {"plateNo": plate, "freeMinutes": free_minutes})
        except CarParkRejected as exc:
            if exc.code == CAR_NOT_IN_LOT:
                raise CarNotInLot() from exc
            raise CarParkUnavailable(details={"carpark_code": exc.code}) from exc
        except CarParkError as exc:
            raise CarParkUnavailable() from exc
        try:
            return ParkingFee(
                plate=str(data["plateNo"]),
                entry_time=datetime.fromisoformat(str(data["entryTime"])).astimezone(UTC),
                parking_minutes=_int(data["parkingMinutes"]),
                total_fee_fen=_int(data["totalFee"]),
                free_minutes=_int(data["freeMinutes"]),
                fee_after_minutes_fen=_int(data["payFee"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            log.warning("car park fee answer malformed: %r", data)
            raise CarParkUnavailable() from exc

    def notify_discount(self, notice: DiscountNotice) -> None:
        """Tell the car park about a deduction; safe to repeat with the same order number.

        Raises CarParkRejected, CarParkNotReached or CarParkNoAnswer (see the module docstring).
        """
        self._call(
            "/api/v1/parking/discount",
            {
                "orderNo": notice.order_no,
                "plateNo": notice.plate,
                "totalFee": notice.total_fee_fen,
                "discountFee": notice.discount_fen,
                "discountMinutes": notice.discount_minutes,
                "payFee": notice.pay_fen,
            },
        )

    def payment_state(self, order_no: str) -> PaymentState:
        """Whether the car park holds our order. Raises CarParkError when it cannot tell."""
        try:
            data = self._call("/api/v1/parking/payment-status", {"orderNo": order_no})
        except CarParkRejected as exc:
            if exc.code == ORDER_NOT_FOUND:
                return PaymentState.NOT_FOUND
            raise
        if data.get("status") != "SUCCESS":
            raise CarParkNoAnswer(f"unexpected payment status {data.get('status')!r}")
        return PaymentState.APPLIED

    def _call(self, path: str, fields: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"parkId": self.park_id, **fields}, ensure_ascii=False, separators=(",", ":"))
        raw = body.encode()
        timestamp = str(int(time.time() * 1000))
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-Park-Timestamp": timestamp,
            "X-Park-Sign": hmac.new(self._key, raw + timestamp.encode(), hashlib.sha256).hexdigest(),
        }
        try:
            response = self._http.post(self.api_base + path, data=raw, headers=headers, timeout=self._timeout)
        except requests.RequestException as exc:
            dependency_error("carpark", "timeout" if isinstance(exc, requests.Timeout) else "connection")
            if _never_sent(exc):
                log.warning("car park unreachable at %s: %s", path, type(exc).__name__)
                raise CarParkNotReached(f"{path}: {type(exc).__name__}") from exc
            log.warning("car park gave no answer at %s: %s", path, type(exc).__name__)
            raise CarParkNoAnswer(f"{path}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            dependency_error("carpark", f"http_{response.status_code}")
            log.warning("car park answered HTTP %s at %s", response.status_code, path)
            raise CarParkNoAnswer(f"{path}: HTTP {response.status_code}")
        try:
            answer = response.json()
            code, msg, data = answer["code"], answer.get("msg", ""), answer.get("data")
        except (ValueError, KeyError, TypeError) as exc:
            dependency_error("carpark", "unreadable")
            raise CarParkNoAnswer(f"{path}: unreadable answer") from exc
        if code != 0:
            dependency_error("carpark", code)
            log.info("car park refused %s: %s %s", path, code, msg)
            raise CarParkRejected(_int(code), str(msg))
        return data if isinstance(data, dict) else {}


def _never_sent(exc: requests.RequestException) -> bool:
    """Only a connection that was never made proves the request did not arrive; a reset or a read
    timeout may come after the car park acted on it."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(exc, requests.ConnectionError) and isinstance(reason, NewConnectionError)


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    return value
