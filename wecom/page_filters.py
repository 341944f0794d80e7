"""Jinja filters the WeCom pages use: mall-local dates, yuan from fen, task type names."""

from __future__ import annotations

from datetime import datetime

from flask import Flask

from app.extensions import mall_time
from app.models import TaskType
from app.services.task_rules import TASK_TYPE_NAMES


def mall_date(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(mall_time().tz).strftime("%Y-%m-%d %H:%M")


def yuan(fen: int) -> str:
    """Fen as money, the way the console shows it too (one `yuan` filter per app): 123450 → "¥1,234.50"."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}¥{whole:,}.{cents:02d}"


def task_type_label(task_type: TaskType) -> str:
    return TASK_TYPE_NAMES.get(task_type, str(task_type))


def register(app: Flask) -> None:
    app.add_template_filter(mall_date, "mall_date")
    app.add_template_filter(yuan, "yuan")
    app.add_template_filter(task_type_label, "task_type_label")
