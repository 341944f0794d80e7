"""Driving the console the way a browser does: sign in through the login form, post forms with the
page's CSRF token."""

from __future__ import annotations

import re
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.models import OperatorRole
from tests import factories

PASSWORD = "correct-horse"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


def log_in(client: FlaskClient, username: str, password: str = PASSWORD) -> Any:
    token = csrf_of(client.get("/console/login").get_data(as_text=True))
    return client.post(
        "/console/login", data={"username": username, "password": password, "csrf_token": token}
    )


def signed_in(client: FlaskClient, session: Session, role: OperatorRole, **overrides: Any) -> str:
    """Signs a new operator of `role` (username = the role's value) in; returns their CSRF token."""
    factories.create_operator(session, role.value, PASSWORD, role=role, **overrides)
    assert log_in(client, role.value).status_code == 302
    return csrf_of(client.get("/console/").get_data(as_text=True))
