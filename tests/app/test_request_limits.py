"""Oversized bodies are refused before anything parses them (413, in JSON); the console's import
uploads have a larger cap of their own; ids beyond what the database stores are a plain 404."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import Config
from app.models import ImportJob, OperatorRole
from tests import factories
from tests.app.console.console_flows import signed_in
from tests.flows import bearer, operator_login

MIB = 1024 * 1024


@pytest.fixture
def config(config: Config, tmp_path: Path) -> Config:
    return config.with_overrides(IMPORT_DIR=str(tmp_path / "uploads"), MAX_IMPORT_UPLOAD_BYTES=4 * MIB)


def json_of_size(size: int) -> bytes:
    padding = size - len(json.dumps({"code": ""}))
    return json.dumps({"code": "x" * padding}).encode()


def assert_payload_too_large(response: object) -> None:
    assert response.status_code == 413  # type: ignore[attr-defined]
    body = response.get_json()  # type: ignore[attr-defined]
    assert body["code"] == "PAYLOAD_TOO_LARGE"
    assert "过大" in body["message"]


def test_the_default_cap_is_two_mebibytes() -> None:
    assert Config.from_env({}).MAX_REQUEST_BYTES == 2 * MIB


@pytest.mark.parametrize(
    "path", ["/api/mp/v1/auth/login", "/api/staff/v1/auth/login", "/api/pos/v1/purchases"]
)
def test_a_body_over_the_cap_is_refused_with_413_json(client: FlaskClient, path: str) -> None:
    response = client.post(path, data=json_of_size(2 * MIB + 1), content_type="application/json")

    assert_payload_too_large(response)


def test_a_body_at_the_cap_is_read_as_usual(client: FlaskClient) -> None:
    body = json_of_size(2 * MIB)
    assert len(body) == 2 * MIB

    response = client.post("/api/mp/v1/auth/login", data=body, content_type="application/json")

    # Parsed and refused on its merits (an unknown WeChat code), not for its size.
    assert response.status_code != 413
    assert response.get_json()["code"] != "PAYLOAD_TOO_LARGE"


def test_a_chunked_body_over_the_cap_is_refused(client: FlaskClient) -> None:
    body = json.dumps({"code": "sandbox:openid-1", "padding": "x" * (3 * MIB)}).encode()

    response = client.post(
        "/api/mp/v1/auth/login",
        input_stream=io.BytesIO(body),
        headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"},
        # As gunicorn says of a chunked body it has de-chunked: the stream ends where the body does.
        environ_overrides={"wsgi.input_terminated": True},
    )

    # No length to refuse up front: werkzeug stops reading at the cap, and the cut JSON is refused.
    assert response.status_code == 400
    assert response.get_json()["code"] == "BAD_REQUEST"


def test_the_console_accepts_an_import_larger_than_the_api_cap(client: FlaskClient, session: Session) -> None:
    factories.create_tiers(session)
    csrf = signed_in(client, session, OperatorRole.ADMIN)
    rows = "".join(f"138{n:08d},会员{n}\n" for n in range(3 * MIB // 20))
    content = ("手机号,姓名\n" + rows).encode()
    assert 2 * MIB < len(content) < 4 * MIB

    response = client.post(
        "/console/imports",
        data={"csrf_token": csrf, "kind": "members", "file": (io.BytesIO(content), "crm.csv")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 302
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 1


def test_an_import_over_its_own_cap_is_refused(client: FlaskClient, session: Session) -> None:
    csrf = signed_in(client, session, OperatorRole.ADMIN)
    content = b"\xe6\x89\x8b\xe6\x9c\xba\xe5\x8f\xb7\n" + b"13800000000\n" * (5 * MIB // 12)

    response = client.post(
        "/console/imports",
        data={"csrf_token": csrf, "kind": "members", "file": (io.BytesIO(content), "crm.csv")},
        content_type="multipart/form-data",
    )

    assert response.status_code == 413
    assert "上传的内容过大" in response.get_data(as_text=True)  # the console's error page
    assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


@pytest.mark.parametrize("member_id", [2**31, 2**64, 10**30])
def test_an_id_beyond_the_database_range_is_not_found(
    client: FlaskClient, session: Session, member_id: int
) -> None:
    factories.create_operator(session)

    response = client.get(f"/api/admin/v1/members/{member_id}/points", headers=bearer(operator_login(client)))

    assert response.status_code == 404
    assert response.get_json()["code"] == "NOT_FOUND"
