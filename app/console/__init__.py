"""The operators' side: the admin API under /api/admin/v1 and the server-rendered console under /console/."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api


def register_admin_api(api: Api) -> None:
    from app.console import (
        advisor_views,
        auth_views,
        coupon_views,
        job_views,
        member_merge_views,
        parking_views,
        partner_views,
        points_views,
        pos_terminal_views,
        scene_views,
        tag_views,
        task_views,
        tier_views,
    )

    api.register_blueprint(auth_views.blp)
    api.register_blueprint(scene_views.blp)
    api.register_blueprint(points_views.blp)
    api.register_blueprint(tier_views.blp)
    api.register_blueprint(partner_views.blp)
    api.register_blueprint(pos_terminal_views.blp)
    api.register_blueprint(coupon_views.blp)
    api.register_blueprint(parking_views.blp)
    api.register_blueprint(tag_views.blp)
    api.register_blueprint(advisor_views.blp)
    api.register_blueprint(task_views.blp)
    api.register_blueprint(job_views.blp)
    api.register_blueprint(member_merge_views.blp)


def register_console_pages(app: Flask) -> None:
    # Imported for their routes, which are on the console blueprint.
    from app.console import (  # noqa: F401
        advisor_pages,
        audit_pages,
        campaign_pages,
        coupon_pages,
        dashboard_views,
        import_pages,
        job_pages,
        member_merge_pages,
        member_views,
        org_pages,
        rules_tier_views,
        rules_views,
        scene_pages,
        segment_pages,
        tag_pages,
        task_rule_pages,
    )
    from app.console.pages import bp

    app.register_blueprint(bp)
