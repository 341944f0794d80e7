"""View decorators applying the limits of app.ratelimit: request rates (429) and the lockout of staff
who submit too many invalid member or coupon codes (423). Both need the caller authenticated first
(they key by `g.actor`), so they go below the auth decorator."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import g, request

from app.errors import CodeVerifyLocked, RateLimited, declare_raises, retry_after
from app.extensions import extensions
from app.ratelimit import LimitKind
from app.services.coupons import CouponCodeInvalid
from app.services.member_codes import MemberCodeInvalid

F = TypeVar("F", bound=Callable[..., Any])

# What a guesser gets back: a code whose signature does not check out (or whose member is gone).
# Expired and used codes are genuine ones, shown too late or twice, so they do not count.
_WRONG_CODE_ERRORS = (MemberCodeInvalid, CouponCodeInvalid)


def rate_limited(kind: LimitKind) -> Callable[[F], F]:
    """At most RATE_LIMIT_<KIND> requests per caller (`g.actor`, if authenticated) and
    RATE_LIMIT_ADDRESS_FACTOR times that per client address; over it, 429 RATE_LIMITED with Retry-After."""

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            refusal = extensions().request_limits.hit(kind, g.get("actor"), request.remote_addr)
            if refusal is not None:
                raise retry_after(RateLimited, refusal.retry_after)
            return view(*args, **kwargs)

        return declare_raises(cast(F, wrapper), RateLimited)

    return decorator


def code_verification(view: F) -> F:
    """A staff endpoint that checks a member or coupon code: refused with 423 CODE_VERIFY_LOCKED (and
    Retry-After) while the caller is locked out; each invalid code counts towards the lockout."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        lockout = extensions().code_verify_lockout
        actor: str = g.actor
        wait = lockout.locked_for(actor)
        if wait is not None:
            raise retry_after(CodeVerifyLocked, wait)
        try:
            return view(*args, **kwargs)
        except _WRONG_CODE_ERRORS:
            lockout.record_failure(actor)
            raise

    return declare_raises(cast(F, wrapper), CodeVerifyLocked)
