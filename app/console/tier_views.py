"""Placeholder: being written."""

from flask_smorest import Blueprint

blp = Blueprint("admin_tier_views", __name__, url_prefix="/api/admin/v1")
