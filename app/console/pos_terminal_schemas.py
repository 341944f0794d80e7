"""Shapes of the admin API for POS terminals."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT


class PosTerminalIn(ma.Schema):
    store_id = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=MAX_INT),
        metadata={"description": "所属门店"},
    )
    name = ma.fields.String(
        required=True, validate=validate.Length(1, 64), metadata={"description": "终端名称，如 1 号收银台"}
    )


class PosTerminalListArgs(ma.Schema):
    store_id = ma.fields.Integer(load_default=None, validate=validate.Range(min=1, max=MAX_INT))


class PosTerminalOut(ma.Schema):
    id = ma.fields.Integer()
    store_id = ma.fields.Integer()
    name = ma.fields.String()
    key_id = ma.fields.String(metadata={"description": "密钥编号，终端在 X-Pos-Key-Id 中携带"})
    is_active = ma.fields.Boolean()
    created_at = ma.fields.DateTime()
    rotated_at = ma.fields.DateTime(allow_none=True, metadata={"description": "最近一次更换密钥的时间"})


class PosTerminalWithSecretOut(PosTerminalOut):
    """Dumps a `pos.IssuedKey`: the secret is shown this once."""

    id = ma.fields.Integer(attribute="terminal.id")
    store_id = ma.fields.Integer(attribute="terminal.store_id")
    name = ma.fields.String(attribute="terminal.name")
    key_id = ma.fields.String(attribute="terminal.key_id")
    is_active = ma.fields.Boolean(attribute="terminal.is_active")
    created_at = ma.fields.DateTime(attribute="terminal.created_at")
    rotated_at = ma.fields.DateTime(attribute="terminal.rotated_at", allow_none=True)
    secret = ma.fields.String(metadata={"description": "签名密钥：仅此一次返回，请配置到终端"})
