"""Log lines never carry a phone number, a token, an openid or a secret (PIPL; issue #11).

`MaskingFilter` rewrites a record's final message (its `msg % args`), its exception text and its stack
text with every match masked:
- mainland mobile numbers, also written +86/0086/86, with spaces or dashes: 138****5678;
- `Bearer <anything>` and our signed tokens (itsdangerous `payload.timestamp.signature`, whose
  payload is base64 JSON: `eyJ...`; a zlib-compressed Flask session cookie: `.eJ...`): [token];
- WeChat openids and unionids (28 characters of [A-Za-z0-9_-] starting with "o"): [openid];
- the value after a sensitive name in URLs, JSON, reprs and headers (`access_token=`, `"secret": `,
  `session_key`, `openid`, `unionid`, `js_code`, `password`, `signature`, ...): name=***. This also
  catches the sandbox's free-form openids, which have no fixed shape.

`install_log_masking` puts the filter on the root logger and on the loggers with handlers of their own
(werkzeug's and gunicorn's access and error logs, Flask's app logger) and on their handlers, and wraps
the log record factory so that records are masked as they are made: a handler added later (werkzeug's
own in debug mode, a test's capture) and a logger nobody thought of are covered too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

_SENSITIVE_NAMES = (
    "access_token",
    "refresh_token",
    "suite_access_token",
    "session_key",
    "corpsecret",
    "appsecret",
    "secret",
    "js_code",
    "phone_code",
    "encrypted_data",
    "encryptedData",
    "EncodingAESKey",
    "aes_key",
    "password",
    "passwd",
    "signature",
    "sign",
    "openid",
    "unionid",
    "external_userid",
    "ticket",
    "csrf_token",
    "token",
)
# name, then what separates it from its value in a query string, JSON, a repr or a header
# (`name=`, `"name": "`, `'name': '`, `name: `), then the value up to the next separator.
_NAMED_VALUE = re.compile(
    r"(?i)(?<![A-Za-z0-9])(" + "|".join(re.escape(name) for name in _SENSITIVE_NAMES) + r")"
    # `b'...'` is a bytes repr, case-sensitively: a value may itself start with "B" or "b".
    r"([\"']?[ \t]*[=:][ \t]*(?:(?-i:b)[\"'])?[\"']?)"
    r"([^\s&\"',;)}\]>]+)"
)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+")
# itsdangerous tokens and JWTs (base64 JSON payload, "eyJ"), zlib-compressed session cookies (".eJ").
_SIGNED_TOKEN = re.compile(r"\.?\be[yJ][A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{8,}")
# Also at least one capital or digit, as base64 of random bytes has: a 28-letter identifier in a
# traceback (`on_request_finished_callback`) stays readable.
_OPENID = re.compile(
    r"(?<![A-Za-z0-9_-])o(?=[A-Za-z0-9_-]{27}(?![A-Za-z0-9_-]))(?=[a-z_-]*[A-Z0-9])[A-Za-z0-9_-]{27}"
)
_PHONE = re.compile(r"(?<![0-9])(?:(?:\+|00)?86[ -]?)?(1[3-9][0-9])[ -]?[0-9]{4}[ -]?([0-9]{4})(?![0-9])")


def mask(text: str) -> str:
    """`text` with phones, tokens, openids and secret values masked; idempotent."""
    text = _NAMED_VALUE.sub(r"\1\2***", text)
    text = _BEARER.sub(r"\1 ***", text)
    text = _SIGNED_TOKEN.sub("[token]", text)
    text = _OPENID.sub("[openid]", text)
    return _PHONE.sub(r"\1****\2", text)


_MASKED = "_mallmember_masked"


def mask_record(record: logging.LogRecord) -> None:
    """Replace the record's message (and args), exception text and stack text with masked ones."""
    if getattr(record, _MASKED, False):
        return
    try:
        message = record.getMessage()
    except Exception:
        return
    record.msg, record.args = mask(message), None
    if record.exc_info and not record.exc_text:
        # What a Formatter writes for the exception: it uses exc_text when it is set.
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = mask(record.exc_text)
    if record.stack_info:
        record.stack_info = mask(record.stack_info)
    setattr(record, _MASKED, True)


class MaskingFilter(logging.Filter):
    """Masks every record it sees (see the module docstring); never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        mask_record(record)
        return True


# Loggers that log to handlers of their own (gunicorn's do not propagate to the root logger).
_OWN_HANDLER_LOGGERS = ("werkzeug", "gunicorn.error", "gunicorn.access", "flask.app")


def install_log_masking(*extra_loggers: str) -> None:
    """Mask every log line of this process; safe to call for every app built."""
    masking = MaskingFilter()
    for logger in (logging.getLogger(), *map(logging.getLogger, (*_OWN_HANDLER_LOGGERS, *extra_loggers))):
        for filterer in (logger, *logger.handlers):
            if not any(isinstance(existing, MaskingFilter) for existing in filterer.filters):
                filterer.addFilter(masking)
    _mask_new_records()


def _mask_new_records() -> None:
    previous = logging.getLogRecordFactory()
    if getattr(previous, "masks_records", False):
        return

    def masked_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        mask_record(record)
        return record

    factory: Callable[..., logging.LogRecord] = masked_record
    factory.masks_records = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
