"""Access rules that hold for the whole console, read from the route table: a new page that forgets its
role check, or a menu entry that leads to a refusal, fails here."""

from __future__ import annotations

import pytest
from flask import Flask, url_for
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from app.console.pages import NAV
from app.models import OperatorRole
from tests import factories
from tests.app.console.console_flows import signed_in

OPEN_ENDPOINTS = {"console.login", "console.static"}


def test_every_console_route_checks_the_operator_role(app: Flask) -> None:
    console_endpoints = [
        rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint.startswith("console.")
    ]
    assert len(console_endpoints) > 40  # the console's pages are all registered
    unchecked = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("console.")
        and rule.endpoint not in OPEN_ENDPOINTS
        and not hasattr(app.view_functions[rule.endpoint], "console_roles")
    ]

    assert unchecked == []


@pytest.mark.parametrize("role", list(OperatorRole))
def test_every_menu_entry_a_role_sees_opens_for_it(
    client: FlaskClient, session: Session, app: Flask, role: OperatorRole
) -> None:
    store = factories.create_store(session)
    signed_in(client, session, role, store_id=store.id if role == OperatorRole.STORE_MANAGER else None)
    home = client.get("/console/").get_data(as_text=True)

    shown = [item for group in NAV for item in group.items if role in item.roles]
    assert shown, role
    for item in shown:
        with app.test_request_context():
            path = url_for(item.endpoint)
        assert f'href="{path}"' in home, (role, path)
        assert client.get(path).status_code == 200, (role, path)
        assert role in app.view_functions[item.endpoint].console_roles, (role, item.endpoint)
    hidden = [item for group in NAV for item in group.items if role not in item.roles]
    for item in hidden:
        assert role not in app.view_functions[item.endpoint].console_roles, (role, item.endpoint)
