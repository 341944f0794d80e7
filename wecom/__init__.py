"""Store staff and advisors in WeCom: the staff API under /api/staff/v1 (later: callbacks, pushes, H5)."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api


def register_staff_api(api: Api) -> None:
    from wecom import advisor_pool_views, coupon_views, parking_views, staff_views

    api.register_blueprint(staff_views.blp)
    api.register_blueprint(coupon_views.blp)
    api.register_blueprint(parking_views.blp)
    api.register_blueprint(advisor_pool_views.blp)


def register_wecom_callbacks(app: Flask) -> None:
    from wecom import callbacks

    app.register_blueprint(callbacks.bp)
