"""The operators' side: the admin API under /api/admin/v1 (the web console comes later)."""

from __future__ import annotations

from flask_smorest import Api


def register_admin_api(api: Api) -> None:
    from app.console import auth_views, scene_views

    api.register_blueprint(auth_views.blp)
    api.register_blueprint(scene_views.blp)
