"""Settings, read once from the environment (and `.env`) when the app is created.

Every variable is documented in `.env.example`. Development defaults let a fresh
machine run with nothing configured; `ProductionConfig` refuses to start with them.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field, fields, replace
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Any

from limits import parse

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"

# Development-only secrets: readable on purpose, so nobody mistakes them for real ones.
_DEV_SECRET = "dev-only-insecure-secret-change-me"
_DEV_PHONE_KEY = "ZGV2LW9ubHktcGhvbmUta2V5LTMyLWJ5dGVzISEhISE="  # 32 bytes, base64
# WeCom's EncodingAESKey: 43 characters, base64 of 32 bytes without the trailing "=".
_DEV_WECOM_CALLBACK_AES_KEY = "ZGV2LW9ubHktd2Vjb20tY2FsbGJhY2stYWVzLWtleSE"
_DEV_WECOM_CALLBACK_TOKEN = "sandbox-wecom-callback-token"


def _default_database_url() -> str:
    return f"sqlite:///{INSTANCE_DIR / 'mallmember.db'}"


@dataclass(frozen=True)
class Config:
    APP_ENV: str = "development"
    SECRET_KEY: str = _DEV_SECRET
    DATABASE_URL: str = field(default_factory=_default_database_url)
    # A read replica for the console's reports, KPIs and exports (read-only transactions); unset, they
    # read the primary. Replication lag shows there: figures may trail the primary by that much.
    REPORT_DATABASE_URL: str | None = None
    # MySQL/MariaDB connection pool of each process (the API's, per worker; the scheduler's), for both
    # engines: connections kept, extra ones allowed under load, their age limit, and how long a request
    # waits for a free one before failing. Pre-ping tests each connection on checkout (one round trip),
    # for networks that drop idle connections sooner than the recycle age.
    DB_POOL_SIZE: int = 10
    DB_MAX_OVERFLOW: int = 20
    DB_POOL_RECYCLE_SECONDS: int = 1800
    DB_POOL_TIMEOUT_SECONDS: int = 30
    DB_POOL_PRE_PING: bool = False
    REDIS_URL: str | None = None
    # How many reverse proxies (load balancer, nginx) stand in front of the app and set X-Forwarded-For,
    # -Proto and -Host: their values are trusted that many hops deep. 0 = none (talking to clients).
    TRUSTED_PROXY_COUNT: int = 0
    # Log lines: "text" (one readable line) or "json" (one JSON object per line, with the request id);
    # production defaults to json.
    LOG_FORMAT: str = "text"
    # /metrics (Prometheus): a scrape must bear this token (Authorization: Bearer ...) or come from one
    # of METRICS_ALLOWED_NETWORKS (comma-separated addresses or CIDRs); with neither, /metrics is closed.
    METRICS_TOKEN: str = ""
    METRICS_ALLOWED_NETWORKS: str = "127.0.0.1/32,::1/128"
    # `flask scheduler`: on SIGTERM, how long running jobs may take to finish before they are interrupted
    # (they resume at their next run); keep it below the orchestrator's kill timeout. And the port it
    # serves its own /metrics on (job durations) for Prometheus; 0 = none.
    SCHEDULER_STOP_GRACE_SECONDS: int = 60
    SCHEDULER_METRICS_PORT: int = 0
    # The nightly refresh (app.nightly) works through this many ranges of members at once, each on its
    # own database connection: about the database server's cores. SQLite always uses one.
    NIGHTLY_CONNECTIONS: int = 2
    # WeCom messages (digests, summaries) are sent from this many threads at once: each call waits on
    # WeCom's answer, so one sender spends most of its time waiting. SQLite always uses one.
    WECOM_PUSH_SENDERS: int = 4
    MALL_NAME: str = "MallMember 示范商场"
    MALL_TIMEZONE: str = "Asia/Shanghai"

    # Personal data: AES-256-GCM key for phone numbers, HMAC key for their blind index.
    PHONE_ENCRYPTION_KEY: str = _DEV_PHONE_KEY
    # Key rotation: "2:<base64 key>,1:<base64 key>", the current key first (new phones are sealed with
    # it; the others only open older ciphertexts until `flask keys rotate` has re-encrypted them).
    # PHONE_ENCRYPTION_KEY is key 1 unless this list names key 1 itself.
    PHONE_ENCRYPTION_KEYS: str = ""
    PHONE_INDEX_KEY: str = _DEV_SECRET + "-phone-index"

    AUTH_TOKEN_TTL_SECONDS: int = 7 * 24 * 3600
    MEMBER_CODE_SECRET: str = _DEV_SECRET + "-member-code"
    MEMBER_CODE_STEP_SECONDS: int = 60
    # Master key from which each POS terminal's signing secret is derived (HMAC of its key id):
    # the database holds no secret, and changing this key voids every terminal's secret.
    POS_KEY_SECRET: str = _DEV_SECRET + "-pos-key"
    # Where files uploaded in the console's 数据导入 wait for the run-imports job (removed once loaded).
    IMPORT_DIR: str = str(INSTANCE_DIR / "imports")
    PRIVACY_POLICY_VERSION: str = "2026-11"
    # Members with no login, purchase or points entry for this many days are anonymised by the
    # purge-personal-data job, as if they had deleted their account (PIPL retention); 0 = never.
    RETENTION_INACTIVE_DAYS: int = 0
    ADMIN_LOGIN_MAX_FAILURES: int = 5
    ADMIN_LOGIN_LOCKOUT_SECONDS: int = 900
    # How long a worker refuses claims on a sold-out coupon without asking the database (needs
    # REDIS_URL; 0 turns it off). Stock an operator adds becomes claimable within this time.
    SOLD_OUT_MEMORY_MS: int = 1000
    # Abuse limits (`limits` strings, e.g. "10/minute"), per member or staff account; a client address
    # gets RATE_LIMIT_ADDRESS_FACTOR times as many (a mall's Wi-Fi puts many shoppers behind one address).
    # LOGIN covers mini-program login and sign-up; CLAIM coupon claims (flash and points); VERIFY staff
    # scanning member and coupon codes; CHECKIN the daily check-in. In Redis when REDIS_URL is set.
    RATE_LIMIT_LOGIN: str = "10/minute"
    RATE_LIMIT_CLAIM: str = "30/minute"
    RATE_LIMIT_VERIFY: str = "60/minute"
    RATE_LIMIT_CHECKIN: str = "10/minute"
    RATE_LIMIT_ADDRESS_FACTOR: int = 20
    # A staff account that submits this many invalid member or coupon codes within the window may not
    # verify codes for the lockout (brute-force guard; 0 turns it off).
    CODE_VERIFY_MAX_FAILURES: int = 10
    CODE_VERIFY_FAILURE_WINDOW_SECONDS: int = 600
    CODE_VERIFY_LOCKOUT_SECONDS: int = 900
    # How long a response to a request with an Idempotency-Key is replayed (purge-idempotency-keys job).
    IDEMPOTENCY_KEY_TTL_HOURS: int = 24

    WECHAT_APPID: str = "wxsandbox0000000001"
    WECHAT_SECRET: str = "sandbox-wechat-secret"
    WECHAT_API_BASE: str = "https://api.weixin.qq.com"
    WECHAT_SIGNUP_PAGE: str = "pages/signup/index"
    WECOM_CORP_ID: str = "wwsandbox000000001"
    WECOM_SECRET: str = "sandbox-wecom-secret"
    WECOM_AGENT_ID: str = "1000002"
    WECOM_API_BASE: str = "https://qyapi.weixin.qq.com"
    # The callback URL (/wecom/callback) set up in WeCom's admin console: its Token and
    # EncodingAESKey, and how old a signed timestamp may be before the callback counts as replayed.
    WECOM_CALLBACK_TOKEN: str = _DEV_WECOM_CALLBACK_TOKEN
    WECOM_CALLBACK_AES_KEY: str = _DEV_WECOM_CALLBACK_AES_KEY
    WECOM_CALLBACK_MAX_AGE_SECONDS: int = 300
    # The advisor and merchant pages inside WeCom: where OAuth sends staff to sign in, the JS-SDK
    # WeCom serves to pages (scanQRCode), how long a page sign-in lasts, and the customer-tag group
    # advisors' manual tags are mirrored into.
    WECOM_OAUTH_AUTHORIZE_URL: str = "https://open.weixin.qq.com/connect/oauth2/authorize"
    WECOM_JSSDK_URL: str = "https://res.wx.qq.com/open/js/jweixin-1.2.0.js"
    WECOM_PAGE_SESSION_SECONDS: int = 12 * 3600
    WECOM_CORP_TAG_GROUP: str = "会员中台标签"
    HTTP_TIMEOUT_SECONDS: int = 5
    # Where advisors open the app's pages from WeCom messages (the digest links to /wecom/advisor/).
    PUBLIC_BASE_URL: str = "http://127.0.0.1:5000"
    WECHAT_TOKEN_RETRIES: int = 1

    # The car park's open API (科拓 / 捷顺 / 蓝卡 style): signed JSON requests. `make run` and the
    # tests point the base URL at the sandbox car park.
    CARPARK_API_BASE: str = "http://127.0.0.1:5103"
    CARPARK_PARK_ID: str = "sandbox-park-001"
    CARPARK_SIGNING_KEY: str = _DEV_SECRET + "-carpark"
    CARPARK_TIMEOUT_SECONDS: int = 5
    # A payment still pending this long after it was recorded (a crash before the car park was
    # told) is settled by the reconciliation job; longer than any request's car-park call.
    CARPARK_PENDING_GRACE_SECONDS: int = 120

    # The largest request body accepted (bytes); a bigger one gets 413 PAYLOAD_TOO_LARGE. The console's
    # 数据导入 uploads (whole CRM and POS exports) have their own, larger cap.
    MAX_REQUEST_BYTES: int = 2 * 1024 * 1024
    MAX_IMPORT_UPLOAD_BYTES: int = 512 * 1024 * 1024

    TESTING: bool = False

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Config:
        """Build settings from environment variables named like the fields."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f.name)
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(raw, f.type)
        values.update(overrides)
        config_cls = ProductionConfig if values.get("APP_ENV") == "production" else cls
        config = config_cls(**values)
        config.validate()
        return config

    def with_overrides(self, **overrides: Any) -> Config:
        return replace(self, **overrides)

    def phone_encryption_keys(self) -> tuple[tuple[int, str], ...]:
        """The phone keyring as (key id, base64 key) pairs, the current key first."""
        keys = _parse_phone_keys(self.PHONE_ENCRYPTION_KEYS)
        listed = dict(keys)
        if 1 in listed:
            if self.PHONE_ENCRYPTION_KEY not in (listed[1], _DEV_PHONE_KEY):
                raise ValueError("PHONE_ENCRYPTION_KEY and key 1 of PHONE_ENCRYPTION_KEYS differ")
        elif self._phone_key_1_in_use():
            keys.append((1, self.PHONE_ENCRYPTION_KEY))
        return tuple(keys)

    def _phone_key_1_in_use(self) -> bool:
        return True

    def validate(self) -> None:
        if self.LOG_FORMAT not in {"text", "json"}:
            raise ValueError("LOG_FORMAT must be text or json")
        if self.TRUSTED_PROXY_COUNT < 0:
            raise ValueError("TRUSTED_PROXY_COUNT must be 0 or more")
        self.metrics_networks()
        if self.RETENTION_INACTIVE_DAYS < 0:
            raise ValueError("RETENTION_INACTIVE_DAYS must be 0 (off) or a number of days")
        self.phone_encryption_keys()
        for name in ("RATE_LIMIT_LOGIN", "RATE_LIMIT_CLAIM", "RATE_LIMIT_VERIFY", "RATE_LIMIT_CHECKIN"):
            try:
                parse(getattr(self, name))
            except ValueError as exc:
                raise ValueError(f"{name} must be a rate limit such as 10/minute") from exc
        if self.RATE_LIMIT_ADDRESS_FACTOR < 1 or self.IDEMPOTENCY_KEY_TTL_HOURS < 1:
            raise ValueError("RATE_LIMIT_ADDRESS_FACTOR and IDEMPOTENCY_KEY_TTL_HOURS must be at least 1")
        if self.MEMBER_CODE_STEP_SECONDS <= 0 or self.MEMBER_CODE_STEP_SECONDS > 60:
            raise ValueError("MEMBER_CODE_STEP_SECONDS must be between 1 and 60")
        if not _is_encoding_aes_key(self.WECOM_CALLBACK_AES_KEY):
            raise ValueError("WECOM_CALLBACK_AES_KEY must be WeCom's 43-character EncodingAESKey")

    def pool_settings(self) -> PoolSettings:
        return PoolSettings(
            size=self.DB_POOL_SIZE,
            max_overflow=self.DB_MAX_OVERFLOW,
            recycle_seconds=self.DB_POOL_RECYCLE_SECONDS,
            timeout_seconds=self.DB_POOL_TIMEOUT_SECONDS,
            pre_ping=self.DB_POOL_PRE_PING,
        )

    def metrics_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        try:
            return tuple(
                ip_network(part.strip(), strict=False)
                for part in self.METRICS_ALLOWED_NETWORKS.split(",")
                if part.strip()
            )
        except ValueError as exc:
            raise ValueError(f"METRICS_ALLOWED_NETWORKS: {exc}") from exc

    def credential_env(self) -> dict[str, str]:
        """WeChat/WeCom/car-park credentials as environment variables, for a sandbox that must accept them."""
        names = (
            "WECHAT_APPID",
            "WECHAT_SECRET",
            "WECOM_CORP_ID",
            "WECOM_SECRET",
            "WECOM_AGENT_ID",
            "WECOM_CALLBACK_TOKEN",
            "WECOM_CALLBACK_AES_KEY",
            "CARPARK_PARK_ID",
            "CARPARK_SIGNING_KEY",
        )
        return {name: str(getattr(self, name)) for name in names}

    def flask_settings(self) -> dict[str, Any]:
        """What Flask and flask-smorest read from `app.config`."""
        return {
            "SECRET_KEY": self.SECRET_KEY,
            "TESTING": self.TESTING,
            "JSON_AS_ASCII": False,
            "API_TITLE": "MallMember API",
            "API_VERSION": "v1",
            "OPENAPI_VERSION": "3.0.3",
            "OPENAPI_URL_PREFIX": "/api",
            "OPENAPI_JSON_PATH": "openapi.json",
            "OPENAPI_SWAGGER_UI_PATH": "docs",
            "OPENAPI_SWAGGER_UI_URL": "/api/docs/assets/",
        }


@dataclass(frozen=True)
class PoolSettings:
    size: int = 10
    max_overflow: int = 20
    recycle_seconds: int = 1800
    timeout_seconds: int = 30
    pre_ping: bool = False


@dataclass(frozen=True)
class ProductionConfig(Config):
    APP_ENV: str = "production"
    LOG_FORMAT: str = "json"

    def _phone_key_1_in_use(self) -> bool:
        # With a key list, leaving PHONE_ENCRYPTION_KEY unset retires key 1 (once rotated away from);
        # without one it is the only key, and the check below refuses the development value.
        return not self.PHONE_ENCRYPTION_KEYS or self.PHONE_ENCRYPTION_KEY != _DEV_PHONE_KEY

    def validate(self) -> None:
        super().validate()
        insecure = [
            name
            for name in (
                "SECRET_KEY",
                "PHONE_INDEX_KEY",
                "MEMBER_CODE_SECRET",
                "POS_KEY_SECRET",
                "CARPARK_SIGNING_KEY",
            )
            if _DEV_SECRET in getattr(self, name) or getattr(self, name) == _DEV_PHONE_KEY
        ]
        if any(key == _DEV_PHONE_KEY for _, key in self.phone_encryption_keys()):
            insecure.append("PHONE_ENCRYPTION_KEYS" if self.PHONE_ENCRYPTION_KEYS else "PHONE_ENCRYPTION_KEY")
        if self.WECOM_CALLBACK_TOKEN == _DEV_WECOM_CALLBACK_TOKEN:
            insecure.append("WECOM_CALLBACK_TOKEN")
        if self.WECOM_CALLBACK_AES_KEY == _DEV_WECOM_CALLBACK_AES_KEY:
            insecure.append("WECOM_CALLBACK_AES_KEY")
        if insecure:
            raise ValueError(f"production requires real secrets for: {', '.join(insecure)}")


def _parse_phone_keys(spec: str) -> list[tuple[int, str]]:
    """ "2:<base64>,1:<base64>" as [(2, "<base64>"), (1, "<base64>")]; refuses what cannot work."""
    keys: list[tuple[int, str]] = []
    for item in filter(None, (part.strip() for part in spec.split(","))):
        key_id, sep, key = item.partition(":")
        if not sep or not key_id.strip().isdigit() or not 1 <= int(key_id) <= 255:
            raise ValueError("PHONE_ENCRYPTION_KEYS entries must be <key id 1-255>:<base64 key>")
        if int(key_id) in dict(keys):
            raise ValueError(f"PHONE_ENCRYPTION_KEYS names key {int(key_id)} twice")
        try:
            decoded = base64.b64decode(key.strip(), validate=True)
        except binascii.Error:
            decoded = b""
        if len(decoded) != 32:
            raise ValueError(f"PHONE_ENCRYPTION_KEYS key {int(key_id)} must be 32 bytes, base64-encoded")
        keys.append((int(key_id), key.strip()))
    return keys


def _is_encoding_aes_key(value: str) -> bool:
    if len(value) != 43:
        return False
    try:
        return len(base64.b64decode(value + "=", validate=True)) == 32
    except binascii.Error:
        return False


def _coerce(raw: str, type_name: Any) -> Any:
    type_text = str(type_name)
    if type_text == "int":
        return int(raw)
    if type_text == "bool":
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    return raw
