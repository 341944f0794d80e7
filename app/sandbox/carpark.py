"""Fake car-park system (停车场系统) open API, in the style of 科拓 / 捷顺 / 蓝卡.

Requests are JSON bodies signed with HMAC-SHA256 over `body + timestamp` (headers
`X-Park-Timestamp`, milliseconds, and `X-Park-Sign`, hex) with the park's key; answers are
`{"code": 0 | <n>, "msg": ..., "data": ...}` with HTTP 200, like the real systems. Cars sit in
the lot with an entry time; the fee follows a tariff (first 30 minutes free, ¥5 per started hour,
¥50 per day by default). `/sandbox/...` (unsigned) adds cars, changes the tariff, injects
failures (timeout, HTTP 5xx, business error, lost answer; see app.sandbox.faults) and shows the
discounts accepted.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from .faults import KINDS, FaultBook, parse_fault

JsonObject = dict[str, Any]

CHINA = timezone(timedelta(hours=8))
SIGNATURE_MAX_AGE_MS = 5 * 60 * 1000
DEFAULT_TIMEOUT_DELAY_SECONDS = 3.0

# The car park's own error codes.
OK = 0
BAD_SIGNATURE = 1001
STALE_TIMESTAMP = 1002
UNKNOWN_PARK = 1003
BAD_PARAMETERS = 1004
CAR_NOT_IN_LOT = 2001
FEE_MISMATCH = 2002
ORDER_CONFLICT = 2003
ORDER_NOT_FOUND = 2004


class CarParkError(Exception):
    def __init__(self, code: int, msg: str) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg


@dataclass
class Tariff:
    free_minutes: int = 30
    hourly_fen: int = 500
    daily_cap_fen: int = 5_000

    def fee_fen(self, minutes: int) -> int:
        """The fee for `minutes` parked: nothing within the free time, else per started hour, capped daily."""
        if minutes <= self.free_minutes:
            return 0
        days, rest = divmod(minutes, 24 * 60)
        return days * self.daily_cap_fen + min(self.daily_cap_fen, math.ceil(rest / 60) * self.hourly_fen)


@dataclass
class Discount:
    order_no: str
    plate_no: str
    entry_time: str
    total_fee: int
    discount_fee: int
    pay_fee: int
    discount_minutes: int
    accepted_at: str


@dataclass
class CarParkState:
    park_id: str
    signing_key: str
    tariff: Tariff = field(default_factory=Tariff)
    cars: dict[str, float] = field(default_factory=dict)  # plate -> entry (epoch seconds)
    discounts: dict[str, Discount] = field(default_factory=dict)
    faults: FaultBook = field(default_factory=FaultBook)
    request_log: list[JsonObject] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.tariff = Tariff()
            self.cars.clear()
            self.discounts.clear()
            self.request_log.clear()
        self.faults.reset()


api = Blueprint("carpark_api", __name__, url_prefix="/api/v1")
control = Blueprint("carpark_control", __name__, url_prefix="/sandbox")


def create_carpark_app(park_id: str, signing_key: str) -> Flask:
    app = Flask(__name__)
    app.extensions["carpark"] = CarParkState(park_id, signing_key)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    app.register_error_handler(CarParkError, _render_error)
    app.register_error_handler(NotFound, lambda e: (jsonify(code=404, msg="接口不存在", data=None), 404))
    app.register_error_handler(
        MethodNotAllowed, lambda e: (jsonify(code=405, msg="请求方式错误", data=None), 405)
    )
    app.register_blueprint(api)
    app.register_blueprint(control)
    return app


def state() -> CarParkState:
    carpark: CarParkState = current_app.extensions["carpark"]
    return carpark


def _render_error(error: CarParkError) -> Response:
    return jsonify(code=error.code, msg=error.msg, data=None)


def _ok(data: JsonObject) -> JsonObject:
    return {"code": OK, "msg": "成功", "data": data}


# --- the open API ---------------------------------------------------------------------------------


def signed(handler: Callable[[JsonObject], JsonObject]) -> Callable[[], Any]:
    """Log, fire an injected fault if one is queued, check the signature and park, then handle."""

    def view() -> Any:
        carpark = state()
        raw = request.get_data()
        with carpark.lock:
            carpark.request_log.append(
                {"path": request.path, "headers": dict(request.headers), "body": raw.decode(errors="replace")}
            )
        fault = carpark.faults.take(request.path)
        if fault is None:
            return handler(_verified_body(carpark, raw))
        answer = None
        if fault.process:
            try:
                answer = handler(_verified_body(carpark, raw))
            except CarParkError:
                # A refusal is an answer too: a lost one is lost like any other.
                if fault.kind != "lost_answer":
                    raise
        if fault.delay_seconds:
            time.sleep(fault.delay_seconds)
        if fault.kind == "error":
            raise CarParkError(fault.errcode, fault.errmsg)
        if fault.kind == "timeout":
            return answer if answer is not None else _ok({})
        if fault.kind == "lost_answer":
            return Response("<html><body>504 Gateway Time-out</body></html>", 504, mimetype="text/html")
        return jsonify(code=fault.http_status, msg="Internal Server Error", data=None), fault.http_status

    view.__name__ = handler.__name__
    return view


def _verified_body(carpark: CarParkState, raw: bytes) -> JsonObject:
    timestamp = request.headers.get("X-Park-Timestamp", "")
    sign = request.headers.get("X-Park-Sign", "")
    expected = hmac.new(carpark.signing_key.encode(), raw + timestamp.encode(), hashlib.sha256).hexdigest()
    if not timestamp.isdigit() or not hmac.compare_digest(sign.lower(), expected):
        raise CarParkError(BAD_SIGNATURE, "签名错误")
    if abs(time.time() * 1000 - int(timestamp)) > SIGNATURE_MAX_AGE_MS:
        raise CarParkError(STALE_TIMESTAMP, "请求时间戳已过期")
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise CarParkError(BAD_PARAMETERS, "参数格式错误")
    if body.get("parkId") != carpark.park_id:
        raise CarParkError(UNKNOWN_PARK, "车场编号不存在")
    return body


def _text(body: JsonObject, key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise CarParkError(BAD_PARAMETERS, f"参数错误：{key}")
    return value


def _amount(body: JsonObject, key: str) -> int:
    value = body.get(key, 0)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise CarParkError(BAD_PARAMETERS, f"参数错误：{key}")
    return value


def _car(carpark: CarParkState, plate: str) -> tuple[float, int]:
    entry = carpark.cars.get(plate)
    if entry is None:
        raise CarParkError(CAR_NOT_IN_LOT, "车辆不在场")
    return entry, int((time.time() - entry) // 60)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(int(epoch), CHINA).isoformat()


def query_fee(body: JsonObject) -> JsonObject:
    """停车费查询: the fee now, and the fee if `freeMinutes` are taken off the time parked."""
    carpark = state()
    plate, free_minutes = _text(body, "plateNo"), _amount(body, "freeMinutes")
    with carpark.lock:
        entry, minutes = _car(carpark, plate)
        total = carpark.tariff.fee_fen(minutes)
        after_minutes = carpark.tariff.fee_fen(max(0, minutes - free_minutes))
    return _ok(
        {
            "plateNo": plate,
            "entryTime": _iso(entry),
            "parkingMinutes": minutes,
            "totalFee": total,
            "freeMinutes": free_minutes,
            "payFee": after_minutes,
        }
    )


def notify_discount(body: JsonObject) -> JsonObject:
    """优惠/缴费通知: accept a deduction for the car's current fee, once per orderNo."""
    carpark = state()
    order_no, plate = _text(body, "orderNo"), _text(body, "plateNo")
    total, discount, pay = _amount(body, "totalFee"), _amount(body, "discountFee"), _amount(body, "payFee")
    minutes = _amount(body, "discountMinutes")
    if discount + pay != total:
        raise CarParkError(BAD_PARAMETERS, "参数错误：优惠金额与应付金额之和不等于停车费")
    with carpark.lock:
        accepted = carpark.discounts.get(order_no)
        if accepted is not None:
            if (accepted.plate_no, accepted.discount_fee, accepted.total_fee) != (plate, discount, total):
                raise CarParkError(ORDER_CONFLICT, "订单号重复")
            return _ok({"orderNo": order_no, "payFee": accepted.pay_fee})
        entry, parked = _car(carpark, plate)
        if carpark.tariff.fee_fen(parked) != total:
            raise CarParkError(FEE_MISMATCH, "停车费已变化，请重新查询")
        carpark.discounts[order_no] = Discount(
            order_no, plate, _iso(entry), total, discount, pay, minutes, datetime.now(UTC).isoformat()
        )
    return _ok({"orderNo": order_no, "payFee": pay})


def payment_status(body: JsonObject) -> JsonObject:
    """订单状态查询: whether the car park holds our order."""
    carpark = state()
    order_no = _text(body, "orderNo")
    with carpark.lock:
        accepted = carpark.discounts.get(order_no)
    if accepted is None:
        raise CarParkError(ORDER_NOT_FOUND, "订单不存在")
    return _ok({"orderNo": order_no, "status": "SUCCESS", "discountFee": accepted.discount_fee})


api.add_url_rule("/parking/fee", view_func=signed(query_fee), methods=["POST"])
api.add_url_rule("/parking/discount", view_func=signed(notify_discount), methods=["POST"])
api.add_url_rule("/parking/payment-status", view_func=signed(payment_status), methods=["POST"])


# --- control ----------------------------------------------------------------------------------------


def _bad(error: str) -> tuple[Response, int]:
    return jsonify(ok=False, error=error), 400


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@control.post("/reset")
def reset() -> Response:
    state().reset()
    return jsonify(ok=True)


@control.post("/cars")
def park_car() -> Response | tuple[Response, int]:
    """A car enters (or re-enters): {"plateNo", "entryMinutesAgo"}."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("plateNo"), str):
        return _bad("plateNo must be a string")
    minutes_ago = body.get("entryMinutesAgo", 0)
    if not _int(minutes_ago) or minutes_ago < 0:
        return _bad("entryMinutesAgo must be a non-negative integer")
    carpark = state()
    with carpark.lock:
        # A few seconds' margin so the whole minute does not roll over mid-test.
        carpark.cars[body["plateNo"]] = time.time() - minutes_ago * 60 - 5
    return jsonify(ok=True)


@control.delete("/cars/<plate>")
def car_leaves(plate: str) -> Response:
    carpark = state()
    with carpark.lock:
        carpark.cars.pop(plate, None)
    return jsonify(ok=True)


@control.get("/cars")
def cars() -> Response:
    carpark = state()
    with carpark.lock:
        listed = [{"plateNo": plate, "entryTime": _iso(entry)} for plate, entry in carpark.cars.items()]
    return jsonify(cars=listed)


@control.post("/tariff")
def set_tariff() -> Response | tuple[Response, int]:
    """{"freeMinutes", "hourlyFen", "dailyCapFen"}, each optional."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        return _bad("body must be a JSON object")
    carpark = state()
    names = {"freeMinutes": "free_minutes", "hourlyFen": "hourly_fen", "dailyCapFen": "daily_cap_fen"}
    changes = {names[key]: value for key, value in body.items() if key in names}
    if any(not _int(value) or value < 0 for value in changes.values()):
        return _bad("tariff values must be non-negative integers")
    with carpark.lock:
        for name, value in changes.items():
            setattr(carpark.tariff, name, value)
    return jsonify(ok=True, tariff=asdict(carpark.tariff))


@control.post("/faults")
def add_fault() -> Response | tuple[Response, int]:
    """{"path" (or "*"), "kind": "business"|"http_error"|"timeout"|"lost_answer", "code"?, "msg"?,
    "httpStatus"?, "delaySeconds"?, "process"?, "times"? | "untilCleared"?}

    A timeout's request is carried out (its answer comes too late) unless `process` is false; a lost
    answer's always is, and a 504 page comes back instead of the answer."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("path"), str):
        return _bad("path must be a string")
    kind = body.get("kind")
    if kind not in {"business", *KINDS} - {"error"}:
        return _bad("kind must be business, http_error, timeout or lost_answer")
    generic = {
        "kind": "error" if kind == "business" else kind,
        "times": body.get("times", 1),
        "until_cleared": body.get("untilCleared", False),
        "errcode": body["code"] if _int(body.get("code")) else 3001,
        "errmsg": body["msg"] if isinstance(body.get("msg"), str) else "车场系统繁忙",
        "http_status": body["httpStatus"] if _int(body.get("httpStatus")) else 500,
        "delay_seconds": body.get("delaySeconds", DEFAULT_TIMEOUT_DELAY_SECONDS if kind == "timeout" else 0),
        "process": bool(body.get("process", True)),
    }
    fault = parse_fault(generic, default_errcode=3001, default_errmsg="车场系统繁忙")
    if isinstance(fault, str):
        return _bad(fault)
    state().faults.add(body["path"], fault)
    return jsonify(ok=True)


@control.get("/faults")
def list_faults() -> Response:
    return jsonify(state().faults.to_json())


@control.delete("/faults")
def clear_faults() -> Response:
    dropped = state().faults.clear(request.args.get("path") or None)
    return jsonify(ok=True, cleared=dropped)


@control.get("/discounts")
def discounts() -> Response:
    carpark = state()
    with carpark.lock:
        accepted = [asdict(discount) for discount in carpark.discounts.values()]
    return jsonify(discounts=accepted)


@control.get("/requests")
def requests_log() -> Response:
    carpark = state()
    with carpark.lock:
        log = list(carpark.request_log)
    return jsonify(requests=log)
