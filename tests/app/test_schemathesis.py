"""Every operation of the OpenAPI spec, fed generated (valid and invalid) requests: never a 5xx, and
every response as the spec documents it (status, content type, body schema).

Schemathesis drives the Flask app in-process (WSGI), one test per operation, with a bounded and
derandomised number of examples so that CI runs are quick and repeatable. Each caller authenticates
the way it does in production: shoppers, staff and operators with their bearer tokens, POS terminals
and partners with an HMAC signature over the exact bytes sent.

One app and one set of callers serve the whole module (building them per operation would triple the
run time); operations that would lock the callers out use callers of their own.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import hypothesis
import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import strategies as st
from schemathesis.checks import CHECKS
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NOT_SET
from schemathesis.generation import GenerationMode
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from app import create_app
from app.config import Config
from app.db import normalize_database_url
from app.models import Partner, StaffRole
from app.partner_api.signing import signature
from app.sandbox import SandboxProcess
from tests import factories
from tests.conftest import build_config, running_app
from tests.flows import bearer, operator_login, registered_shopper, staff_login

MAX_EXAMPLES = 6

CONFIG = SchemathesisConfig.from_dict(
    {
        # Nothing written to disk: no `.schemathesis/` directory in the tree.
        "cache": {"enabled": False},
        "generation": {"deterministic": True, "database": "none"},
    }
)
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)


@dataclass(frozen=True)
class Callers:
    shopper_token: str
    # DELETE /me deletes its caller's account: it gets a shopper of its own.
    deleting_shopper_token: str
    staff_token: str
    advisor_token: str
    operator_token: str
    pos_key_id: str
    pos_secret: str
    partner_code: str
    partner_secret: str

    def bearer_token(self, method: str, path: str) -> str | None:
        if path.endswith("/auth/login"):
            return None
        if (method, path) == ("DELETE", "/api/mp/v1/me"):
            return self.deleting_shopper_token
        if path.startswith("/api/mp/v1/"):
            return self.shopper_token
        if path.startswith("/api/staff/v1/pool/"):
            return self.advisor_token
        if path.startswith("/api/staff/v1/"):
            return self.staff_token
        if path.startswith("/api/admin/v1/"):
            return self.operator_token
        return None


def _arrange_callers(client: FlaskClient, session: Session) -> Callers:
    factories.create_tiers(session)
    store = factories.create_store(session)
    factories.create_operator(session)
    factories.create_staff(session, "manager-1", StaffRole.MANAGER, store_id=store.id)
    factories.create_staff(session, "advisor-1", StaffRole.ADVISOR)
    partner = Partner(
        code="yuepao",
        name="悦跑步道",
        secret="secret-of-yuepao",
        activity_unit=100,
        points_per_unit=2,
        daily_cap_points=20,
        is_active=True,
    )
    session.add(partner)
    session.flush()
    operator_token = operator_login(client)
    # A terminal the fuzzed key-rotation and deactivation operations cannot reach (their ids are
    # generated), made through the API so that its secret is the one the keyring derives.
    terminal = client.post(
        "/api/admin/v1/pos-terminals",
        json={"store_id": store.id, "name": "1 号收银台"},
        headers=bearer(operator_token),
    ).get_json()
    shopper_token, _ = registered_shopper(client, "openid-fuzz", "13800000000", nickname="测试🙂")
    deleting_token, _ = registered_shopper(client, "openid-fuzz-delete", "13800000001")
    return Callers(
        shopper_token=shopper_token,
        deleting_shopper_token=deleting_token,
        staff_token=staff_login(client, "manager-1"),
        advisor_token=staff_login(client, "advisor-1"),
        operator_token=operator_token,
        pos_key_id=terminal["key_id"],
        pos_secret=terminal["secret"],
        partner_code=partner.code,
        partner_secret=partner.secret,
    )


@pytest.fixture(scope="module")
def fuzzed_app(database_url: str, sandbox: SandboxProcess) -> Iterator[tuple[Flask, Callers]]:
    with running_app(build_config(database_url, sandbox), sandbox) as app:
        engine = create_engine(normalize_database_url(database_url), isolation_level="AUTOCOMMIT")
        try:
            with Session(engine, expire_on_commit=False) as session:
                callers = _arrange_callers(app.test_client(), session)
            yield app, callers
        finally:
            engine.dispose()


def _sent_body(case: Any) -> bytes:
    """The body bytes the WSGI transport sends for this case (werkzeug serialises `json=` with json.dumps)."""
    if case.body is NOT_SET:
        return b""
    kwargs = case.as_transport_kwargs()
    if "data" in kwargs:
        data = kwargs["data"]
        return data if isinstance(data, bytes) else str(data).encode()
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    return b""


@pytest.fixture(scope="module")
def api_schema(fuzzed_app: tuple[Flask, Callers]) -> Any:
    app, callers = fuzzed_app
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=CONFIG)

    @schema.auth(refresh_interval=None)
    class PerCallerAuth:
        """Valid credentials for whoever calls the operation, chosen by its path prefix."""

        def get(self, case: Any, context: Any) -> Callers:
            return callers

        def set(self, case: Any, data: Callers, context: Any) -> None:
            path = case.operation.path
            full_path = case.operation.schema.get_full_path(case.formatted_path)
            headers = dict(case.headers or {})
            stamp = str(int(time.time()))
            if path.startswith("/api/pos/v1/"):
                nonce = secrets.token_hex(16)
                headers["X-Pos-Key-Id"] = data.pos_key_id
                headers["X-Timestamp"] = stamp
                headers["X-Nonce"] = nonce
                headers["X-Signature"] = signature(
                    data.pos_secret, stamp, case.method, full_path, _sent_body(case), nonce=nonce
                )
            elif path.startswith("/api/partner/v1/"):
                headers["X-Partner-Code"] = data.partner_code
                headers["X-Timestamp"] = stamp
                headers["X-Signature"] = signature(
                    data.partner_secret, stamp, case.method, full_path, _sent_body(case)
                )
            elif (token := data.bearer_token(case.method, path)) is not None:
                headers["Authorization"] = f"Bearer {token}"
            case.headers = headers

    return schema


def _operations() -> list[str]:
    """Every operation of the spec, read from an app that connects to nothing, so that each gets a test."""
    app = create_app(Config.from_env({}, TESTING=True, DATABASE_URL="sqlite://"))
    spec = app.test_client().get("/api/openapi.json").get_json()
    return [
        f"{method.upper()} {path}"
        for path, item in spec["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch"}
    ]


@pytest.mark.parametrize("label", _operations())
def test_every_operation_answers_as_documented_and_never_fails(api_schema: Any, label: str) -> None:
    operation = api_schema.find_operation_by_label(label)
    checks = CHECKS.get_by_names(CHECK_NAMES)
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
    )

    @hypothesis.given(cases)
    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def answers_as_documented(case: Any) -> None:
        case.call_and_validate(checks=checks)

    answers_as_documented()
