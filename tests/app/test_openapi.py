"""The API documents itself from its schemas, and every error speaks the same JSON."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

EXPECTED_OPERATIONS = {
    ("post", "/api/mp/v1/auth/login"),
    ("post", "/api/mp/v1/members"),
    ("get", "/api/mp/v1/me"),
    ("get", "/api/mp/v1/me/code"),
    ("post", "/api/staff/v1/auth/login"),
    ("post", "/api/staff/v1/member-codes/verify"),
    ("post", "/api/admin/v1/auth/login"),
    ("post", "/api/admin/v1/qr-scenes"),
    ("get", "/api/admin/v1/qr-scenes"),
    ("get", "/api/admin/v1/qr-scenes/{scene_id}/image"),
}


def test_the_openapi_spec_lists_every_operation_with_schemas(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()

    assert spec["openapi"].startswith("3.")
    operations = {(method, path) for path, item in spec["paths"].items() for method in item}
    assert operations >= EXPECTED_OPERATIONS
    sign_up = spec["paths"]["/api/mp/v1/members"]["post"]
    assert sign_up["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/SignUpIn")
    assert sign_up["security"] == [{"bearerAuth": []}]
    assert set(spec["components"]["schemas"]["Error"]["properties"]) == {"code", "message", "details"}


def test_swagger_ui_is_served_from_local_assets(client: FlaskClient) -> None:
    page = client.get("/api/docs")

    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "/api/docs/assets/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower() and "unpkg" not in html.lower()
    asset = client.get("/api/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.data) > 100_000


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("get", "/api/nowhere", 404, "NOT_FOUND"),
        ("get", "/api/mp/v1/auth/login", 405, "METHOD_NOT_ALLOWED"),
        ("put", "/api/mp/v1/me", 405, "METHOD_NOT_ALLOWED"),
    ],
)
def test_framework_errors_are_json(
    client: FlaskClient, method: str, path: str, status: int, code: str
) -> None:
    response = getattr(client, method)(path)

    assert response.status_code == status
    assert response.get_json()["code"] == code
    assert response.get_json()["message"]


def test_method_not_allowed_says_what_is_allowed(client: FlaskClient) -> None:
    response = client.put("/api/mp/v1/me")

    assert set(response.headers["Allow"].split(", ")) >= {"GET", "DELETE"}


@pytest.mark.parametrize(
    "path", ["/api/mp/v1/auth/login", "/api/staff/v1/auth/login", "/api/admin/v1/auth/login"]
)
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2, 3]", "application/json"),
        ('"just a string"', "application/json"),
        ("code=abc", "application/x-www-form-urlencoded"),
        ("\xff\xfe", "application/json"),
        ("", "application/json"),
    ],
)
def test_malformed_bodies_are_clear_4xx_never_500(
    client: FlaskClient, path: str, data: str, content_type: str
) -> None:
    response = client.post(path, data=data, content_type=content_type)

    assert 400 <= response.status_code < 500
    body = response.get_json()
    assert body["code"] in {"BAD_REQUEST", "VALIDATION_ERROR"}
    assert body["message"]


def test_field_errors_are_explained_in_chinese(client: FlaskClient) -> None:
    response = client.post("/api/mp/v1/auth/login", json={"code": 42, "extra": True})

    assert response.status_code == 422
    assert response.get_json() == {
        "code": "VALIDATION_ERROR",
        "message": "请求参数有误",
        "details": {"code": ["应为字符串"], "extra": ["不支持的字段"]},
    }
