"""Store staff and advisors in WeCom: the staff API under /api/staff/v1, callbacks, and the pages
(advisor H5 under /wecom/advisor/, merchant assistant under /wecom/merchant/)."""

from __future__ import annotations

from flask import Blueprint, Flask
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


def register_wecom_pages(app: Flask) -> None:
    """The server-rendered pages staff open inside WeCom (advisor H5, merchant assistant)."""
    from wecom import advisor_views, merchant_views, page_filters

    app.register_blueprint(
        Blueprint("wecom_static", __name__, static_folder="static", static_url_path="/wecom/static")
    )
    page_filters.register(app)
    app.register_blueprint(advisor_views.bp)
    app.register_blueprint(merchant_views.bp)
