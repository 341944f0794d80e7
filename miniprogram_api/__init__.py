"""The shoppers' mini-program API, under /api/mp/v1."""

from __future__ import annotations

from flask_smorest import Api


def register_miniprogram_api(api: Api) -> None:
    from miniprogram_api.views import auth, coupons, members, parking, points, privacy

    api.register_blueprint(auth.blp)
    api.register_blueprint(members.blp)
    api.register_blueprint(points.blp)
    api.register_blueprint(coupons.blp)
    api.register_blueprint(parking.blp)
    api.register_blueprint(privacy.blp)
