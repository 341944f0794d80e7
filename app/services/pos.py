"""Store POS terminals: their keys, the nonces of their signed requests, and the sales they report.

A terminal's signing secret is never stored: it is HMAC(POS_KEY_SECRET, key id). The secret is
shown to the operator once, when the terminal is created or its key rotated; rotating issues a
new key id, so the old key (and its secret) stops working at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import insert_row
from app.errors import Conflict, DomainError, NotFound, ValidationFailed
from app.mall_time import MallTime
from app.models import PointsSettings, PosRequestNonce, PosTerminal
from app.pii import PhoneVault
from app.services import audit, members, purchases
from app.services.member_codes import MemberCodeSigner

# How long a spent nonce is remembered: twice the ±5-minute signature window, since a timestamp may
# lie up to one window in the future as well as the past (app.partner_api.signing checks the window).
NONCE_RETENTION = timedelta(minutes=10)


class PosTerminalNotFound(NotFound):
    code, message = "POS_TERMINAL_NOT_FOUND", "POS 终端不存在"


class MemberNotFound(NotFound):
    code, message = "MEMBER_NOT_FOUND", "未找到该手机号的会员；非会员消费请不填手机号"


class PurchaseNotFound(NotFound):
    code, message = "PURCHASE_NOT_FOUND", "本门店没有该小票号的消费记录"


class TerminalInactive(Conflict):
    code, message = "POS_TERMINAL_INACTIVE", "该终端已停用，不能更换密钥；如需继续使用请新建终端"


class NonceReused(DomainError):
    code, status, message = "NONCE_REUSED", 401, "该请求随机数（nonce）已使用过，请求可能被重放"


class PosKeyring:
    """Derives each terminal's signing secret from the master key and the terminal's key id."""

    def __init__(self, master_secret: str) -> None:
        self._master = master_secret.encode()

    def secret_for(self, key_id: str) -> str:
        return hmac.new(self._master, f"pos-terminal:{key_id}".encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    """A terminal with the secret of its current key: returned once, never readable again."""

    terminal: PosTerminal
    secret: str


@dataclass(frozen=True)
class PosSale:
    receipt_no: str
    amount_fen: int
    member_code: str | None = None
    phone: str | None = None
    paid_at: datetime | None = None


def _new_key_id() -> str:
    return "pos_" + secrets.token_hex(12)


def create_terminal(
    session: Session,
    keyring: PosKeyring,
    *,
    store_id: int,
    name: str,
    operator_id: int,
    at: datetime,
    client_ip: str | None = None,
) -> IssuedKey:
    """A new active terminal of a store, with its first key; audited."""
    if purchases.store_by_id(session, store_id) is None:
        raise ValidationFailed(details={"store_id": ["门店不存在"]})
    terminal = PosTerminal(store_id=store_id, name=name, key_id=_new_key_id(), is_active=True, created_at=at)
    session.add(terminal)
    session.flush()
    audit.record(
        session,
        operator_id=operator_id,
        action="pos_terminal.create",
        target_type="pos_terminal",
        target_id=terminal.id,
        detail={"store_id": store_id, "name": name, "key_id": terminal.key_id},
        client_ip=client_ip,
    )
    return IssuedKey(terminal, keyring.secret_for(terminal.key_id))


def list_terminals(session: Session, *, store_id: int | None = None) -> list[PosTerminal]:
    query = select(PosTerminal).order_by(PosTerminal.id)
    if store_id is not None:
        query = query.where(PosTerminal.store_id == store_id)
    return list(session.scalars(query))


def rotate_key(
    session: Session,
    keyring: PosKeyring,
    terminal_id: int,
    *,
    operator_id: int,
    at: datetime,
    client_ip: str | None = None,
) -> IssuedKey:
    """Issue the terminal a new key id (hence a new secret); the old key is refused from the commit on.
    A deactivated terminal gets none: its requests are refused anyway, and a new key would only mislead."""
    terminal = _terminal_for_update(session, terminal_id)
    if not terminal.is_active:
        raise TerminalInactive()
    old_key_id = terminal.key_id
    terminal.key_id = _new_key_id()
    terminal.rotated_at = at
    session.flush()
    audit.record(
        session,
        operator_id=operator_id,
        action="pos_terminal.rotate_key",
        target_type="pos_terminal",
        target_id=terminal.id,
        detail={"key_id": [old_key_id, terminal.key_id]},
        client_ip=client_ip,
    )
    return IssuedKey(terminal, keyring.secret_for(terminal.key_id))


def deactivate_terminal(
    session: Session, terminal_id: int, *, operator_id: int, client_ip: str | None = None
) -> PosTerminal:
    """Refuse the terminal's requests from the commit on; deactivating twice changes nothing."""
    terminal = _terminal_for_update(session, terminal_id)
    if terminal.is_active:
        terminal.is_active = False
        session.flush()
        audit.record(
            session,
            operator_id=operator_id,
            action="pos_terminal.deactivate",
            target_type="pos_terminal",
            target_id=terminal.id,
            detail={"is_active": [True, False]},
            client_ip=client_ip,
        )
    return terminal


def active_terminal(session: Session, key_id: str) -> PosTerminal | None:
    """The active terminal with exactly this key id (MySQL's collation would also match other cases)."""
    terminal = session.scalars(select(PosTerminal).where(PosTerminal.key_id == key_id)).one_or_none()
    if terminal is None or terminal.key_id != key_id or not terminal.is_active:
        return None
    return terminal


def use_nonce(session: Session, terminal_id: int, nonce: str, *, at: datetime) -> None:
    """Remember a nonce of the terminal; raises NonceReused when it was used before.

    The unique key decides, so two concurrent requests with one nonce cannot both pass.
    """
    try:
        insert_row(session, PosRequestNonce(terminal_id=terminal_id, nonce=nonce, created_at=at))
    except IntegrityError as exc:
        raise NonceReused() from exc


def purge_nonces(session: Session, *, before: datetime) -> int:
    """Forget nonces older than the signature window: a request that old is refused by its timestamp."""
    result = session.execute(delete(PosRequestNonce).where(PosRequestNonce.created_at < before))
    return int(getattr(result, "rowcount", 0) or 0)


def record_sale(
    session: Session,
    terminal: PosTerminal,
    sale: PosSale,
    *,
    vault: PhoneVault,
    signer: MemberCodeSigner,
    at: MallTime,
    settings: PointsSettings,
) -> purchases.PurchaseResult:
    """Record a sale at the terminal's store exactly like the staff API (once per store and receipt).

    The member is named by member code or by phone; neither makes it a non-member sale.
    An unknown phone is refused rather than silently recorded without the member's points.
    """
    if sale.member_code and sale.phone:
        raise ValidationFailed(details={"phone": ["会员码与手机号只能填写一个"]})
    member_id = None
    if sale.phone:
        member_id = members.member_id_by_phone(session, vault, sale.phone)
        if member_id is None:
            raise MemberNotFound()
    new = purchases.NewPurchase(
        store_id=terminal.store_id,
        receipt_no=sale.receipt_no,
        amount_fen=sale.amount_fen,
        member_id=member_id,
        paid_at=sale.paid_at,
    )
    return purchases.credit_scanned_purchase(
        session,
        new,
        member_code=sale.member_code,
        signer=signer,
        staff=None,
        at=at,
        settings=settings,
        pos_terminal_id=terminal.id,
    )


def record_refund(
    session: Session,
    terminal: PosTerminal,
    *,
    receipt_no: str,
    refund_no: str,
    amount_fen: int,
    at: MallTime,
) -> purchases.RefundResult:
    """Refund a sale of the terminal's store, named by its receipt, once per refund number."""
    purchase = purchases.find_purchase(session, terminal.store_id, receipt_no)
    if purchase is None:
        raise PurchaseNotFound()
    return purchases.refund_purchase(
        session, purchase.id, refund_no, amount_fen, staff=None, at=at, pos_terminal_id=terminal.id
    )


def _terminal_for_update(session: Session, terminal_id: int) -> PosTerminal:
    terminal = session.get(PosTerminal, terminal_id, with_for_update=True)
    if terminal is None:
        raise PosTerminalNotFound()
    return terminal
