"""URL converters that hold path parameters to what the database can store."""

from __future__ import annotations

from flask import Flask
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from app.input_bounds import MAX_INT

# Every id column is a signed 32-bit INTEGER (MariaDB INT; SQLite stores them the same way).
MAX_DATABASE_ID = MAX_INT


class DatabaseIdConverter(IntegerConverter):
    """`<int:...>` for ids: one past the INTEGER range is the plain 404 of an unknown object, and never
    reaches a query, where MariaDB would refuse it as out of range and SQLite's driver could not even
    bind it (a 500 either way)."""

    def to_python(self, value: str) -> int:
        number = int(super().to_python(value))
        if number > MAX_DATABASE_ID:
            # NotFound rather than werkzeug's ValidationError: the router reports a failed conversion
            # as "405 method not allowed" when the same path has rules for other methods.
            raise NotFound()
        return number


def register_url_converters(app: Flask) -> None:
    """Before any route is added: rules pick their converters up when they are registered."""
    app.url_map.converters["int"] = DatabaseIdConverter
