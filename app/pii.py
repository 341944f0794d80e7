"""Phone numbers at rest: AES-256-GCM ciphertext plus an HMAC blind index.

The index lets us find and de-duplicate members by phone without storing it in
clear; the ciphertext is only opened when a person genuinely needs the number.

Encryption keys rotate: a ciphertext starts with the id (one byte, 1-255) of the key that sealed it,
so several keys can be in use while `flask keys rotate` re-encrypts under the current one. Ciphertexts
written before key ids existed carry none and are key 1's. The blind index key never rotates: the
index is the phone's identity in the `phone_index` unique column, and re-keying it would mean
recomputing every index from the decrypted phone at once, with lookups failing in between.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_BYTES = 12
_TAG_BYTES = 16
_PHONE_DIGITS = 11
# Phones are always normalised to 11 digits, so every ciphertext from before key ids has exactly this
# length, and every later one is a byte longer (40: within the VARBINARY(64) column).
UNVERSIONED_LENGTH = _NONCE_BYTES + _PHONE_DIGITS + _TAG_BYTES
UNVERSIONED_KEY_ID = 1
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


class PhoneKeyError(ValueError):
    """A ciphertext this vault cannot open: its key is missing or not the one configured under its id."""

    def __init__(self, message: str, key_id: int) -> None:
        super().__init__(message)
        self.key_id = key_id


class UnknownPhoneKey(PhoneKeyError):
    def __init__(self, key_id: int) -> None:
        super().__init__(f"phone ciphertext is under key {key_id}, which is not configured", key_id)


class WrongPhoneKey(PhoneKeyError):
    def __init__(self, key_id: int) -> None:
        super().__init__(f"phone ciphertext does not open with the key configured as key {key_id}", key_id)


def ciphertext_key_id(ciphertext: bytes) -> int:
    """The id of the key that sealed `ciphertext` (key 1 for one written before key ids)."""
    if len(ciphertext) == UNVERSIONED_LENGTH:
        return UNVERSIONED_KEY_ID
    return ciphertext[0]


class PhoneVault:
    """Seals phones under the current key; opens them under any key it holds.

    `encryption_keys` is either one base64 key (it is key 1) or `(key id, base64 key)` pairs, the
    current key first.
    """

    def __init__(self, encryption_keys: str | Sequence[tuple[int, str]], index_key: str) -> None:
        pairs = (
            [(UNVERSIONED_KEY_ID, encryption_keys)] if isinstance(encryption_keys, str) else encryption_keys
        )
        if not pairs:
            raise ValueError("PhoneVault needs at least one encryption key")
        self._aeads: dict[int, AESGCM] = {}
        for key_id, key_b64 in pairs:
            if not 1 <= key_id <= 255 or key_id in self._aeads:
                raise ValueError(f"phone key ids must be distinct numbers from 1 to 255, not {key_id}")
            key = base64.b64decode(key_b64)
            if len(key) != 32:
                raise ValueError("PHONE_ENCRYPTION_KEY must be 32 bytes, base64-encoded")
            self._aeads[key_id] = AESGCM(key)
        self.current_key_id = pairs[0][0]
        self._current = self._aeads[self.current_key_id]
        # Keyed once: a copy of it hashes a phone in a quarter of the time of hmac.digest (imports
        # compute hundreds of thousands).
        self._index_hmac = hmac.new(index_key.encode(), digestmod=hashlib.sha256)

    def blind_index(self, phone: str) -> str:
        digest = self._index_hmac.copy()
        digest.update(normalize_phone(phone).encode())
        return digest.hexdigest()

    def protect(self, phone: str) -> ProtectedPhone:
        phone = normalize_phone(phone)
        return ProtectedPhone(self._seal(phone), self.blind_index(phone), mask_phone(phone))

    def reveal(self, ciphertext: bytes) -> str:
        key_id = ciphertext_key_id(ciphertext)
        aead = self._aeads.get(key_id)
        if aead is None:
            raise UnknownPhoneKey(key_id)
        sealed = ciphertext if len(ciphertext) == UNVERSIONED_LENGTH else ciphertext[1:]
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, body, b"phone").decode()
        except InvalidTag as exc:
            raise WrongPhoneKey(key_id) from exc

    def reseal(self, ciphertext: bytes) -> bytes:
        """The same phone sealed under the current key (the blind index does not change)."""
        return self._seal(self.reveal(ciphertext))

    def _seal(self, phone: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return bytes([self.current_key_id]) + nonce + self._current.encrypt(nonce, phone.encode(), b"phone")
