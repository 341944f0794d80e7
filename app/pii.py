"""Phone numbers at rest: AES-256-GCM ciphertext plus an HMAC blind index.

The index lets us find and de-duplicate members by phone without storing it in
clear; the ciphertext is only opened when a person genuinely needs the number.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import unicodedata
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_CN_MOBILE = re.compile(r"^1\d{10}$")


class InvalidPhone(ValueError):
    pass


@dataclass(frozen=True)
class ProtectedPhone:
    ciphertext: bytes
    blind_index: str
    masked: str


def normalize_phone(phone: str) -> str:
    """Mainland mobile numbers only, with an optional +86/86 prefix stripped.

    Full-width digits, plus signs and dashes (as typed on a Chinese keyboard) count as their ASCII forms.
    """
    if len(phone) == 11 and phone.isascii() and phone.isdigit() and phone[0] == "1":
        return phone  # already normal: the common case of bulk imports, without the regular expressions
    digits = re.sub(r"[\s-]", "", unicodedata.normalize("NFKC", phone))
    for prefix in ("+86", "0086"):
        digits = digits.removeprefix(prefix)
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    if not _CN_MOBILE.match(digits):
        raise InvalidPhone("not a mainland China mobile number")
    return digits


def mask_phone(phone: str) -> str:
    return f"{phone[:3]}****{phone[-4:]}"


class PhoneVault:
    def __init__(self, encryption_key_b64: str, index_key: str) -> None:
        key = base64.b64decode(encryption_key_b64)
        if len(key) != 32:
            raise ValueError("PHONE_ENCRYPTION_KEY must be 32 bytes, base64-encoded")
        self._aead = AESGCM(key)
        self._index_key = index_key.encode()

    def blind_index(self, phone: str) -> str:
        return hmac.digest(self._index_key, normalize_phone(phone).encode(), hashlib.sha256).hex()

    def protect(self, phone: str) -> ProtectedPhone:
        phone = normalize_phone(phone)
        nonce = os.urandom(_NONCE_BYTES)
        ciphertext = nonce + self._aead.encrypt(nonce, phone.encode(), b"phone")
        return ProtectedPhone(ciphertext, self.blind_index(phone), mask_phone(phone))

    def reveal(self, ciphertext: bytes) -> str:
        nonce, sealed = ciphertext[:_NONCE_BYTES], ciphertext[_NONCE_BYTES:]
        return self._aead.decrypt(nonce, sealed, b"phone").decode()
