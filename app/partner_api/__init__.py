"""Partners' API under /api/partner/v1, HMAC-signed per partner."""

from __future__ import annotations

from flask_smorest import Api


def register_partner_api(api: Api) -> None:
    from app.partner_api import views

    api.register_blueprint(views.blp)
