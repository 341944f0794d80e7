"""Request and response shapes of the admin API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from app.input_bounds import MAX_INT
from app.models import SceneKind


class OperatorLoginIn(ma.Schema):
    username = ma.fields.String(required=True, validate=validate.Length(1, 64))
    password = ma.fields.String(required=True, validate=validate.Length(1, 128), load_only=True)


class OperatorOut(ma.Schema):
    id = ma.fields.Integer()
    username = ma.fields.String()
    display_name = ma.fields.String()


class OperatorLoginOut(ma.Schema):
    token = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True)
    operator = ma.fields.Nested(OperatorOut, required=True)


class QrSceneIn(ma.Schema):
    kind = ma.fields.Enum(SceneKind, by_value=True, required=True)
    name = ma.fields.String(required=True, validate=validate.Length(1, 100))
    store_id = ma.fields.Integer(strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_INT))
    advisor_userid = ma.fields.String(load_default=None, validate=validate.Length(1, 64))
    referrer_member_id = ma.fields.Integer(
        strict=True, load_default=None, validate=validate.Range(min=1, max=MAX_INT)
    )


class QrSceneOut(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.Enum(SceneKind, by_value=True)
    name = ma.fields.String()
    scene = ma.fields.String(metadata={"description": "小程序码 scene（不超过 32 个字符）"})
    store_id = ma.fields.Integer(allow_none=True)
    advisor_id = ma.fields.Integer(allow_none=True)
    referrer_member_id = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.DateTime()


class PageArgs(ma.Schema):
    page = ma.fields.Integer(load_default=1, validate=validate.Range(min=1, max=100000))
    per_page = ma.fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
