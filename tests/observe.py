"""Watching what the app under test does to the database."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import event

from app.db import bound_database


def statements_during(app: Flask, action: Any) -> list[str]:
    seen: list[str] = []
    engine = bound_database(app).engine

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()).lower())

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return seen
