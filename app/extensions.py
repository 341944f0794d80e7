"""Per-app handles to shared resources, created by `init_extensions`, reached through accessors.

Nothing here connects at import time: each `create_app` builds its own handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import redis
from flask import Flask, current_app
from wechatpy.session import SessionStorage
from wechatpy.session.memorystorage import MemoryStorage
from wechatpy.session.redisstorage import RedisStorage

from app import db
from app.config import Config
from app.integrations.carpark import CarParkClient
from app.integrations.token_storage import RedisWithMemoryFallback
from app.integrations.wechat_client import MiniProgramClient
from app.integrations.wecom_client import WeComClient
from app.mall_time import MallTime
from app.pii import PhoneVault
from app.ratelimit import CodeVerifyLockout, LimitKind, LoginThrottle, RequestLimits, limit_storage
from app.reference_cache import ReferenceCache
from app.services.coupon_claims import ClaimShortcut
from app.services.member_codes import MemberCodeSigner
from app.services.pos import PosKeyring


@dataclass(frozen=True)
class Extensions:
    config: Config
    redis: redis.Redis | None
    phone_vault: PhoneVault
    wechat: MiniProgramClient
    wecom: WeComClient
    admin_login_throttle: LoginThrottle
    request_limits: RequestLimits
    code_verify_lockout: CodeVerifyLockout
    member_code_signer: MemberCodeSigner
    coupon_code_signer: MemberCodeSigner
    mall_tz: ZoneInfo
    carpark: CarParkClient
    claim_shortcut: ClaimShortcut
    pos_keyring: PosKeyring


def init_extensions(app: Flask, config: Config) -> None:
    db.init_app(
        app,
        config.DATABASE_URL,
        session_info=ReferenceCache().session_info(),
        pool=config.pool_settings(),
        report_url=config.REPORT_DATABASE_URL,
    )
    redis_client = redis.Redis.from_url(config.REDIS_URL) if config.REDIS_URL else None
    token_storage: SessionStorage = (
        RedisWithMemoryFallback(RedisStorage(redis_client, prefix="mallmember:wechatpy"))
        if redis_client
        else MemoryStorage()
    )
    limits_storage = limit_storage(config.REDIS_URL)
    app.extensions["mallmember"] = Extensions(
        config=config,
        redis=redis_client,
        phone_vault=PhoneVault(config.phone_encryption_keys(), config.PHONE_INDEX_KEY),
        wechat=MiniProgramClient(
            appid=config.WECHAT_APPID,
            secret=config.WECHAT_SECRET,
            api_base=config.WECHAT_API_BASE,
            storage=token_storage,
            timeout=config.HTTP_TIMEOUT_SECONDS,
            token_retries=config.WECHAT_TOKEN_RETRIES,
        ),
        wecom=WeComClient(
            corp_id=config.WECOM_CORP_ID,
            secret=config.WECOM_SECRET,
            agent_id=config.WECOM_AGENT_ID,
            api_base=config.WECOM_API_BASE,
            storage=token_storage,
            timeout=config.HTTP_TIMEOUT_SECONDS,
            token_retries=config.WECHAT_TOKEN_RETRIES,
        ),
        admin_login_throttle=LoginThrottle(
            limits_storage,
            namespace="mallmember:admin-login",
            max_failures=config.ADMIN_LOGIN_MAX_FAILURES,
            window_seconds=config.ADMIN_LOGIN_LOCKOUT_SECONDS,
        ),
        request_limits=RequestLimits(
            limits_storage,
            {
                LimitKind.LOGIN: config.RATE_LIMIT_LOGIN,
                LimitKind.CLAIM: config.RATE_LIMIT_CLAIM,
                LimitKind.VERIFY: config.RATE_LIMIT_VERIFY,
                LimitKind.CHECKIN: config.RATE_LIMIT_CHECKIN,
            },
            address_factor=config.RATE_LIMIT_ADDRESS_FACTOR,
        ),
        code_verify_lockout=CodeVerifyLockout(
            limits_storage,
            max_failures=config.CODE_VERIFY_MAX_FAILURES,
            window_seconds=config.CODE_VERIFY_FAILURE_WINDOW_SECONDS,
            lockout_seconds=config.CODE_VERIFY_LOCKOUT_SECONDS,
        ),
        member_code_signer=MemberCodeSigner(config.MEMBER_CODE_SECRET, config.MEMBER_CODE_STEP_SECONDS),
        # Its own key: a member code can never pass for a coupon code, or the other way round.
        coupon_code_signer=MemberCodeSigner(
            config.MEMBER_CODE_SECRET + ":coupon", config.MEMBER_CODE_STEP_SECONDS
        ),
        mall_tz=ZoneInfo(config.MALL_TIMEZONE),
        carpark=CarParkClient(
            api_base=config.CARPARK_API_BASE,
            park_id=config.CARPARK_PARK_ID,
            signing_key=config.CARPARK_SIGNING_KEY,
            timeout=config.CARPARK_TIMEOUT_SECONDS,
        ),
        claim_shortcut=ClaimShortcut(redis_client, memory_ms=config.SOLD_OUT_MEMORY_MS),
        pos_keyring=PosKeyring(config.POS_KEY_SECRET),
    )


def extensions() -> Extensions:
    return current_app.extensions["mallmember"]


def settings() -> Config:
    return extensions().config


def mall_time() -> MallTime:
    """Now, on the mall's calendar."""
    return MallTime.current(extensions().mall_tz)
