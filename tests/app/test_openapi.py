"""The API documents itself from its schemas, and every error speaks the same JSON."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

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


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in ("get", "put", "post", "delete", "patch"):
            if method in item:
                yield f"{method.upper()} {path}", item, item[method]


def _takes_input(path_item: dict[str, Any], operation: dict[str, Any]) -> bool:
    """A body, query arguments or an Idempotency-Key: each is validated, and refused with 422."""
    parameters = [*path_item.get("parameters", []), *operation.get("parameters", [])]
    return "requestBody" in operation or any(
        parameter.get("in") == "query"
        or parameter.get("$ref", "").endswith("/IdempotencyKey")
        or parameter.get("name") == "Idempotency-Key"
        for parameter in parameters
    )


def _documents_error(spec: dict[str, Any], operation: dict[str, Any], status: str) -> bool:
    response = operation["responses"].get(status)
    if response is None:
        return False
    if "$ref" in response:
        response = spec["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    schema = response["content"]["application/json"]["schema"]
    return schema == {"$ref": "#/components/schemas/Error"}


def test_every_operation_documents_its_errors_and_nothing_is_left_to_a_default(client: FlaskClient) -> None:
    """No catch-all `default` response (it would make any status conform), and the errors every
    caller can meet are listed: 401 where credentials are required, 422 where input is validated,
    404 where the path names a resource; each in the shared Error schema."""
    spec = client.get("/api/openapi.json").get_json()

    undocumented = []
    for label, path_item, operation in _operations(spec):
        if "default" in operation["responses"]:
            undocumented.append(f"{label}: default")
        expected = []
        if operation.get("security"):
            expected.append("401")
        if _takes_input(path_item, operation):
            expected.append("422")
        if "{" in label:
            expected.append("404")
        if "requestBody" in operation:
            expected.append("413")
        undocumented += [
            f"{label}: {status}" for status in expected if not _documents_error(spec, operation, status)
        ]
    assert undocumented == []


def test_documented_errors_name_their_codes(client: FlaskClient) -> None:
    spec = client.get("/api/openapi.json").get_json()

    verify = spec["paths"]["/api/staff/v1/coupon-redemptions"]["post"]["responses"]
    assert {"401", "403", "409", "422", "423", "429"} <= set(verify)
    assert "CODE_VERIFY_LOCKED" in verify["423"]["description"]
    assert "AUTH_REQUIRED" in verify["401"]["description"]
    pos_purchase = spec["paths"]["/api/pos/v1/purchases"]["post"]["responses"]
    assert "NONCE_REUSED" in pos_purchase["401"]["description"]
    quote = spec["paths"]["/api/mp/v1/me/parking/quote"]["get"]["responses"]
    assert "DEPENDENCY_UNAVAILABLE" in quote["503"]["description"]
