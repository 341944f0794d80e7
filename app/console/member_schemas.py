"""Request and response shapes of merging two members (admin API and console form alike)."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

# Member ids are INT: anything above is a typo, not a member.
MAX_MEMBER_ID = 2_147_483_647


class MemberMergeIn(ma.Schema):
    source_member_id = ma.fields.Integer(
        strict=True,
        required=True,
        validate=validate.Range(min=1, max=MAX_MEMBER_ID),
        metadata={"description": "并入的会员 ID：其积分、券、消费等转给路径中的会员，随后停用"},
    )


class MemberMergeOut(ma.Schema):
    survivor_id = ma.fields.Integer(required=True, metadata={"description": "保留的会员 ID"})
    source_id = ma.fields.Integer(required=True, metadata={"description": "已并入（停用）的会员 ID"})
    moved = ma.fields.Dict(
        keys=ma.fields.String(),
        values=ma.fields.Integer(),
        required=True,
        metadata={"description": "转移的数量：points、points_debt、coupons、purchases、plates、tags 等"},
    )
