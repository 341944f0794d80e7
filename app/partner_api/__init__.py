"""Partners' API under /api/partner/v1 and store POS terminals' under /api/pos/v1, HMAC-signed."""

from __future__ import annotations

from flask_smorest import Api


def register_partner_api(api: Api) -> None:
    from app.partner_api import pos_views, views

    api.register_blueprint(views.blp)
    api.register_blueprint(pos_views.blp)
