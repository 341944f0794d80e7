"""Placeholder: being written."""

from flask_smorest import Blueprint

blp = Blueprint("partner", __name__, url_prefix="/api/partner/v1")
