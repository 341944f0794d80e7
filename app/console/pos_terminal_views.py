"""Operators register store POS terminals, rotate their keys and deactivate them (audited)."""

from __future__ import annotations

from typing import Any

from flask import request
from flask_smorest import Blueprint

from app.auth import BEARER_SECURITY, current_operator, operator_required
from app.console.pos_terminal_schemas import (
    PosTerminalIn,
    PosTerminalListArgs,
    PosTerminalOut,
    PosTerminalWithSecretOut,
)
from app.db import transaction
from app.errors import ValidationFailed, raises
from app.extensions import extensions, mall_time
from app.models import PosTerminal
from app.services import pos

blp = Blueprint(
    "admin_pos_terminal_views", __name__, url_prefix="/api/admin/v1", description="运营后台：POS 终端"
)


@blp.route("/pos-terminals", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(PosTerminalIn())
@blp.response(201, PosTerminalWithSecretOut)
@raises(ValidationFailed)
def create_terminal(args: dict[str, Any]) -> pos.IssuedKey:
    """新建门店 POS 终端：返回密钥编号与签名密钥（密钥仅此一次）"""
    operator_id, at = current_operator().id, mall_time().now
    with transaction() as session:
        return pos.create_terminal(
            session,
            extensions().pos_keyring,
            store_id=args["store_id"],
            name=args["name"],
            operator_id=operator_id,
            at=at,
            client_ip=request.remote_addr,
        )


@blp.route("/pos-terminals", methods=["GET"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.arguments(PosTerminalListArgs(), location="query")
@blp.response(200, PosTerminalOut(many=True))
def list_terminals(args: dict[str, Any]) -> list[PosTerminal]:
    """POS 终端列表（不含密钥），可按门店筛选"""
    with transaction() as session:
        return pos.list_terminals(session, store_id=args["store_id"])


@blp.route("/pos-terminals/<int:terminal_id>/key-rotations", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, PosTerminalWithSecretOut)
@raises(pos.PosTerminalNotFound, pos.TerminalInactive)
def rotate_key(terminal_id: int) -> pos.IssuedKey:
    """更换终端密钥：返回新的密钥编号与签名密钥（仅此一次），旧密钥立即失效"""
    operator_id, at = current_operator().id, mall_time().now
    with transaction() as session:
        return pos.rotate_key(
            session,
            extensions().pos_keyring,
            terminal_id,
            operator_id=operator_id,
            at=at,
            client_ip=request.remote_addr,
        )


@blp.route("/pos-terminals/<int:terminal_id>/deactivation", methods=["POST"])
@blp.doc(security=BEARER_SECURITY)
@operator_required
@blp.response(200, PosTerminalOut)
@raises(pos.PosTerminalNotFound)
def deactivate_terminal(terminal_id: int) -> PosTerminal:
    """停用终端：其请求立即被拒绝（不可恢复，需新建终端）"""
    operator_id = current_operator().id
    with transaction() as session:
        return pos.deactivate_terminal(
            session, terminal_id, operator_id=operator_id, client_ip=request.remote_addr
        )
