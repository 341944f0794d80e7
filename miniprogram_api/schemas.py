"""Request and response shapes of the mini-program API."""

from __future__ import annotations

from datetime import date

import marshmallow as ma
from marshmallow import validate

from app.models import SceneKind


class WeChatLoginIn(ma.Schema):
    code = ma.fields.String(
        required=True, validate=validate.Length(1, 128), metadata={"description": "wx.login() 返回的 code"}
    )


class TierOut(ma.Schema):
    code = ma.fields.String()
    name = ma.fields.String()


class AdvisorOut(ma.Schema):
    userid = ma.fields.String(attribute="wecom_userid")
    name = ma.fields.String()


class SignupSceneOut(ma.Schema):
    kind = ma.fields.Enum(SceneKind, by_value=True)
    name = ma.fields.String()


class MemberOut(ma.Schema):
    id = ma.fields.Integer()
    phone = ma.fields.String(attribute="phone_masked", metadata={"description": "脱敏手机号，如 138****8000"})
    nickname = ma.fields.String(allow_none=True)
    birthday = ma.fields.Date(allow_none=True)
    tier = ma.fields.Nested(TierOut)
    points_balance = ma.fields.Integer()
    advisor = ma.fields.Nested(AdvisorOut, allow_none=True)
    joined_at = ma.fields.DateTime()
    signup_scene = ma.fields.Nested(SignupSceneOut, allow_none=True)


class LoginOut(ma.Schema):
    token = ma.fields.String(required=True)
    expires_in = ma.fields.Integer(required=True, metadata={"description": "token 有效期（秒）"})
    member = ma.fields.Nested(MemberOut, allow_none=True, metadata={"description": "尚未注册时为 null"})


def _not_in_future(value: date) -> None:
    if value > date.today() or value.year < 1900:
        raise ma.ValidationError("生日日期无效")


class SignUpIn(ma.Schema):
    phone_code = ma.fields.String(
        required=True,
        validate=validate.Length(1, 128),
        metadata={"description": "手机号快速验证组件返回的 code"},
    )
    consent_version = ma.fields.String(
        load_default=None,
        validate=validate.Length(max=32),
        metadata={"description": "用户同意的隐私政策版本（必填）"},
    )
    scene = ma.fields.String(
        load_default=None,
        validate=validate.Length(max=32),
        metadata={"description": "扫码进入时的小程序码 scene"},
    )
    birthday = ma.fields.Date(load_default=None, validate=_not_in_future)
    nickname = ma.fields.String(load_default=None, validate=validate.Length(1, 32))


class MemberCodeOut(ma.Schema):
    code = ma.fields.String(required=True, metadata={"description": "动态会员码，仅可使用一次"})
    expires_in = ma.fields.Integer(required=True, metadata={"description": "剩余有效秒数"})
    qr_png_base64 = ma.fields.String(required=True, metadata={"description": "会员码二维码 PNG（base64）"})
