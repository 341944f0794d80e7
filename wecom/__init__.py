"""Store staff and advisors in WeCom: the staff API under /api/staff/v1 (later: callbacks, pushes, H5)."""

from __future__ import annotations

from flask_smorest import Api


def register_staff_api(api: Api) -> None:
    from wecom import coupon_views, parking_views, staff_views

    api.register_blueprint(staff_views.blp)
    api.register_blueprint(coupon_views.blp)
    api.register_blueprint(parking_views.blp)
