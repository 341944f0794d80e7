"""Who may call what: every endpoint in the route table, called by every kind of caller, is allowed or
refused as the ACCESS table below says.

A new endpoint fails here until it gets a row in ACCESS: decide who may call it, and write it down.

"Refused" is 401/403, a redirect to a sign-in page (console and WeCom pages), or 404 where the endpoint
hides whose an object is (`hides=True`). "Allowed" is anything else short of a 500: an empty body's
422 shows the caller got past the gate. Path parameters name real objects, owned by member A or
store 1. One app and one dataset serve the whole module; on each endpoint the refused callers go
first, so that an allowed one changing an object cannot make a refusal pass for the wrong reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from app.sandbox import SandboxProcess
from tests.actors import (
    ADVISOR,
    ALL_ACTORS,
    ANONYMOUS,
    MEMBER_A,
    MEMBER_B,
    OP_ADMIN,
    OP_AUDITOR,
    OP_MARKETING,
    OP_STORE_MANAGER,
    PARTNER,
    POS,
    STAFF_1,
    STAFF_2,
    World,
    build_world,
)
from tests.conftest import autocommit_session, build_config, running_app

EVERYONE = frozenset(ALL_ACTORS)
NOBODY: frozenset[str] = frozenset()
MEMBERS = frozenset({MEMBER_A, MEMBER_B})
COUNTER_STAFF = frozenset({STAFF_1, STAFF_2})
ANY_STAFF = COUNTER_STAFF | {ADVISOR}
OPERATORS = frozenset({OP_ADMIN, OP_MARKETING, OP_STORE_MANAGER, OP_AUDITOR})
ADMIN = frozenset({OP_ADMIN})
ADMIN_AUDITOR = frozenset({OP_ADMIN, OP_AUDITOR})
MARKETING_VIEW = frozenset({OP_ADMIN, OP_MARKETING, OP_AUDITOR})
MARKETING_EDIT = frozenset({OP_ADMIN, OP_MARKETING})
ADMIN_MANAGER = frozenset({OP_ADMIN, OP_STORE_MANAGER})
NOT_AUDITOR = OPERATORS - {OP_AUDITOR}

# Routes that are not endpoints of the program: assets and the API's own docs.
NOT_ENDPOINTS = {"static", "console.static", "wecom_static.static", "api-docs.openapi_json"}
NOT_ENDPOINT_PREFIXES = ("/api/docs",)
LOGIN_PAGES = ("/console/login", "/wecom/advisor/login", "/wecom/merchant/login")


@dataclass(frozen=True)
class Access:
    allowed: frozenset[str]
    # A refusal may be a 404: the endpoint does not tell a caller whether someone else's object exists.
    hides: bool = False
    # Public: anyone may call it, and it checks its own proof (password, OAuth code, CSRF of the form).
    public: bool = False
    # A JSON body that gets past validation, where the refusal depends on the object (store, owner).
    body: Callable[[dict[str, Any]], dict[str, Any]] | None = None


PUBLIC = Access(EVERYONE, public=True)


def admin_api(method: str) -> Access:
    """The JSON admin API: admins do everything, auditors only read; the other roles use the console."""
    return Access(ADMIN_AUDITOR if method == "GET" else ADMIN)


def _admin(rule: str, *methods: str) -> dict[tuple[str, str], Access]:
    return {(f"/api/admin/v1{rule}", method): admin_api(method) for method in methods}


def _console(
    rule: str, get: frozenset[str] | None, post: frozenset[str] | None
) -> dict[tuple[str, str], Access]:
    rows = {}
    if get is not None:
        rows[(f"/console{rule}", "GET")] = Access(get)
    if post is not None:
        rows[(f"/console{rule}", "POST")] = Access(post)
    return rows


ACCESS: dict[tuple[str, str], Access] = {
    # Shoppers' mini-program: a WeChat account's token; ids of A's objects are hidden from B.
    ("/api/mp/v1/auth/login", "POST"): PUBLIC,
    ("/api/mp/v1/members", "POST"): Access(MEMBERS),
    ("/api/mp/v1/coupon-templates", "GET"): Access(MEMBERS),
    ("/api/mp/v1/coupon-templates/<int:template_id>/claims", "POST"): Access(MEMBERS),
    ("/api/mp/v1/me", "GET"): Access(MEMBERS),
    ("/api/mp/v1/me", "DELETE"): Access(MEMBERS),
    ("/api/mp/v1/me/check-ins", "POST"): Access(MEMBERS),
    ("/api/mp/v1/me/code", "GET"): Access(MEMBERS),
    ("/api/mp/v1/me/consents", "POST"): Access(MEMBERS),
    ("/api/mp/v1/me/coupons", "GET"): Access(MEMBERS),
    ("/api/mp/v1/me/coupons/<int:coupon_id>/code", "GET"): Access(frozenset({MEMBER_A}), hides=True),
    ("/api/mp/v1/me/export", "GET"): Access(MEMBERS),
    ("/api/mp/v1/me/parking/payments", "POST"): Access(MEMBERS),
    ("/api/mp/v1/me/parking/quote", "GET"): Access(MEMBERS),
    ("/api/mp/v1/me/plates", "GET"): Access(MEMBERS),
    ("/api/mp/v1/me/plates", "POST"): Access(MEMBERS),
    ("/api/mp/v1/me/plates/<string:plate>", "DELETE"): Access(frozenset({MEMBER_A}), hides=True),
    ("/api/mp/v1/me/points", "GET"): Access(MEMBERS),
    ("/api/mp/v1/me/points/entries", "GET"): Access(MEMBERS),
    ("/api/mp/v1/me/shares", "POST"): Access(MEMBERS),
    ("/api/mp/v1/me/tier", "GET"): Access(MEMBERS),
    # Staff in WeCom: counter staff and managers at the counter, advisors for their pool, any staff at
    # the information desk. Crediting and refunding are held to the staff member's store.
    ("/api/staff/v1/auth/login", "POST"): PUBLIC,
    ("/api/staff/v1/member-codes/verify", "POST"): Access(COUNTER_STAFF),
    ("/api/staff/v1/purchases", "POST"): Access(
        frozenset({STAFF_1}),
        body=lambda ids: {
            "member_id": ids["member_a"],
            "store_id": ids["store1"],
            "receipt_no": "ACL-M-1",
            "amount_fen": 100,
        },
    ),
    ("/api/staff/v1/purchases/<int:purchase_id>/refunds", "POST"): Access(
        frozenset({STAFF_1}), hides=True, body=lambda ids: {"refund_no": "ACL-RF-1", "amount_fen": 100}
    ),
    ("/api/staff/v1/coupon-redemptions", "POST"): Access(COUNTER_STAFF),
    ("/api/staff/v1/coupon-redemptions/<int:redemption_id>", "DELETE"): Access(
        frozenset({STAFF_1}), hides=True
    ),
    ("/api/staff/v1/parking/records", "GET"): Access(ANY_STAFF),
    ("/api/staff/v1/pool/members", "GET"): Access(frozenset({ADVISOR})),
    ("/api/staff/v1/pool/members/<int:member_id>/claim", "POST"): Access(frozenset({ADVISOR})),
    # WeCom pages (a signed cookie from WeCom OAuth) and WeCom's own callback (signed by WeCom only).
    ("/wecom/advisor/login", "GET"): PUBLIC,
    ("/wecom/advisor/", "GET"): Access(frozenset({ADVISOR})),
    ("/wecom/advisor/members/<int:member_id>", "GET"): Access(frozenset({ADVISOR})),
    ("/wecom/advisor/members/<int:member_id>/claim", "POST"): Access(frozenset({ADVISOR})),
    ("/wecom/advisor/members/<int:member_id>/info", "POST"): Access(frozenset({ADVISOR})),
    ("/wecom/advisor/members/<int:member_id>/tags", "POST"): Access(frozenset({ADVISOR})),
    ("/wecom/advisor/tasks/<int:task_id>/complete", "POST"): Access(frozenset({ADVISOR})),
    ("/wecom/merchant/login", "GET"): PUBLIC,
    ("/wecom/merchant/", "GET"): Access(COUNTER_STAFF),
    ("/wecom/callback", "GET"): Access(NOBODY),
    ("/wecom/callback", "POST"): Access(NOBODY),
    # Machines: POS terminals and partners, by HMAC signature.
    ("/api/pos/v1/purchases", "POST"): Access(frozenset({POS})),
    ("/api/pos/v1/refunds", "POST"): Access(frozenset({POS})),
    ("/api/partner/v1/activity-credits", "POST"): Access(frozenset({PARTNER})),
    # The JSON admin API.
    ("/api/admin/v1/auth/login", "POST"): PUBLIC,
    **_admin("/advisor-contact-ways", "GET"),
    **_admin("/advisor-kpis", "GET"),
    **_admin("/advisors/<int:staff_id>/contact-way", "POST"),
    **_admin("/advisors/<int:staff_id>/reassign", "POST"),
    **_admin("/check-in-bonuses", "GET", "POST"),
    **_admin("/check-in-bonuses/<int:bonus_id>", "DELETE"),
    **_admin("/coupon-campaigns", "POST"),
    **_admin("/coupon-campaigns/<int:campaign_id>", "GET"),
    **_admin("/coupon-campaigns/<int:campaign_id>/cancel", "POST"),
    **_admin("/coupon-templates", "GET", "POST"),
    **_admin("/coupon-templates/<int:template_id>", "GET", "PUT"),
    **_admin("/coupon-templates/<int:template_id>/activate", "POST"),
    **_admin("/coupon-templates/<int:template_id>/end", "POST"),
    **_admin("/coupon-templates/<int:template_id>/pause", "POST"),
    **_admin("/earning-rates", "GET", "POST"),
    **_admin("/earning-rates/<int:rate_id>", "PUT", "DELETE"),
    **_admin("/job-runs", "GET"),
    **_admin("/kpis", "GET"),
    **_admin("/members/<int:member_id>/advisor-assignments", "GET"),
    **_admin("/members/<int:member_id>/merge", "POST"),
    **_admin("/members/<int:member_id>/points", "GET"),
    **_admin("/members/<int:member_id>/points-adjustments", "POST"),
    **_admin("/members/<int:member_id>/points/entries", "GET"),
    **_admin("/members/<int:member_id>/tags", "GET"),
    **_admin("/members/<int:member_id>/tags/<int:tag_id>", "PUT", "DELETE"),
    **_admin("/parking-payments", "GET"),
    **_admin("/parking-rules", "GET", "PUT"),
    **_admin("/partners", "GET", "POST"),
    **_admin("/partners/<int:partner_id>", "PUT"),
    **_admin("/partners/<int:partner_id>/secret-rotations", "POST"),
    **_admin("/points-promotions", "GET", "POST"),
    **_admin("/points-promotions/<int:promotion_id>", "PUT", "DELETE"),
    **_admin("/points-settings", "GET", "PUT"),
    **_admin("/pos-terminals", "GET", "POST"),
    **_admin("/pos-terminals/<int:terminal_id>/deactivation", "POST"),
    **_admin("/pos-terminals/<int:terminal_id>/key-rotations", "POST"),
    **_admin("/qr-scenes", "GET", "POST"),
    **_admin("/qr-scenes/<int:scene_id>/image", "GET"),
    **_admin("/segmentation-settings", "GET", "PUT"),
    **_admin("/segments", "GET", "POST"),
    **_admin("/segments/<int:segment_id>", "GET", "PUT", "DELETE"),
    **_admin("/segments/<int:segment_id>/members", "GET"),
    **_admin("/tag-rules/fields", "GET"),
    **_admin("/tag-rules/preview", "POST"),
    **_admin("/tags", "GET", "POST"),
    **_admin("/tags/<int:tag_id>", "PUT"),
    **_admin("/tags/<int:tag_id>/members", "GET"),
    **_admin("/task-rules", "GET", "POST"),
    **_admin("/task-rules/<int:rule_id>", "GET", "PUT"),
    **_admin("/task-rules/<int:rule_id>/deactivate", "POST"),
    **_admin("/task-settings", "GET", "PUT"),
    **_admin("/tasks", "GET"),
    **_admin("/tiers", "GET", "POST"),
    **_admin("/tiers/<int:tier_id>", "PUT", "DELETE"),
    # The console: by role; the auditor reads but never changes (its POSTs are refused, except those
    # that only read: searching and exporting).
    # Probes and the scrape: no user's data; /metrics checks its own proof (METRICS_TOKEN or the
    # scraper's address, tested in test_metrics.py), which the test client's 127.0.0.1 passes.
    ("/healthz", "GET"): PUBLIC,
    ("/readyz", "GET"): PUBLIC,
    ("/metrics", "GET"): PUBLIC,
    ("/console/login", "GET"): PUBLIC,
    ("/console/login", "POST"): PUBLIC,
    # Signing out ends at the sign-in page whether one was signed in or not.
    ("/console/logout", "POST"): PUBLIC,
    **_console("/", OPERATORS, None),
    **_console("/kpis/recompute", None, ADMIN),
    **_console("/operators", ADMIN_AUDITOR, None),
    **_console("/members", OPERATORS, OPERATORS),
    **_console("/members/export", None, OPERATORS),
    **_console("/members/<int:member_id>", OPERATORS, None),
    **_console("/members/<int:member_id>/phone", None, ADMIN),
    **_console("/members/<int:member_id>/points-adjustments", None, MARKETING_EDIT),
    **_console("/members/<int:member_id>/merge", ADMIN, ADMIN),
    **_console("/advisors", OPERATORS, None),
    **_console("/advisors/reassign", None, ADMIN_MANAGER),
    **_console("/audit", ADMIN_AUDITOR, None),
    **_console("/jobs", ADMIN_AUDITOR, None),
    **_console("/imports", ADMIN_AUDITOR, ADMIN),
    **_console("/imports/<int:job_id>/progress", ADMIN_AUDITOR, None),
    **_console("/imports/<int:job_id>/report.csv", ADMIN_AUDITOR, None),
    **_console("/campaigns", MARKETING_VIEW, None),
    **_console("/campaigns/new", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/campaigns/<int:campaign_id>/progress", MARKETING_VIEW, None),
    **_console("/campaigns/<int:campaign_id>/cancel", None, MARKETING_EDIT),
    **_console("/coupons", MARKETING_VIEW, None),
    **_console("/coupons/new", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/coupons/<int:template_id>/edit", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/coupons/<int:template_id>/publish", None, MARKETING_EDIT),
    **_console("/coupons/<int:template_id>/pause", None, MARKETING_EDIT),
    **_console("/coupons/<int:template_id>/end", None, MARKETING_EDIT),
    **_console("/rules", MARKETING_VIEW, None),
    **_console("/rules/points", MARKETING_VIEW, MARKETING_EDIT),
    **_console("/rules/check-in", MARKETING_VIEW, MARKETING_EDIT),
    **_console("/rules/check-in/bonuses", None, MARKETING_EDIT),
    **_console("/rules/check-in/bonuses/<int:bonus_id>/delete", None, MARKETING_EDIT),
    **_console("/rules/referral", MARKETING_VIEW, MARKETING_EDIT),
    **_console("/rules/parking", MARKETING_VIEW, MARKETING_EDIT),
    **_console("/rules/earning-rates", MARKETING_VIEW, None),
    **_console("/rules/earning-rates/new", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/rules/earning-rates/<int:rate_id>/edit", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/rules/earning-rates/<int:rate_id>/delete", None, MARKETING_EDIT),
    **_console("/rules/promotions", MARKETING_VIEW, None),
    **_console("/rules/promotions/new", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/rules/promotions/<int:promotion_id>/edit", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/rules/promotions/<int:promotion_id>/active", None, MARKETING_EDIT),
    **_console("/rules/promotions/<int:promotion_id>/delete", None, MARKETING_EDIT),
    **_console("/rules/tiers", MARKETING_VIEW, None),
    **_console("/rules/tiers/new", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/rules/tiers/<int:tier_id>/edit", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/rules/tiers/<int:tier_id>/delete", None, MARKETING_EDIT),
    **_console("/rules/preview", None, MARKETING_EDIT),
    **_console("/tags", MARKETING_VIEW, None),
    **_console("/tags/new", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/tags/<int:tag_id>", MARKETING_VIEW, None),
    **_console("/tags/<int:tag_id>/edit", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/segments", MARKETING_VIEW, None),
    **_console("/segments/new", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/segments/<int:segment_id>", MARKETING_VIEW, None),
    **_console("/segments/<int:segment_id>/edit", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/segments/<int:segment_id>/delete", None, MARKETING_EDIT),
    **_console("/segments/<int:segment_id>/export", None, MARKETING_EDIT),
    **_console("/task-rules", MARKETING_VIEW, None),
    **_console("/task-rules/new", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/task-rules/<int:rule_id>/edit", MARKETING_EDIT, MARKETING_EDIT),
    **_console("/task-rules/<int:rule_id>/activate", None, MARKETING_EDIT),
    **_console("/task-rules/<int:rule_id>/deactivate", None, MARKETING_EDIT),
    **_console("/task-settings", None, MARKETING_EDIT),
    **_console("/scenes", OPERATORS, NOT_AUDITOR),
    **_console("/scenes/<int:scene_id>/image", OPERATORS, None),
    **_console("/stores", ADMIN_AUDITOR, None),
    **_console("/stores/new", ADMIN, ADMIN),
    **_console("/stores/<int:store_id>/edit", ADMIN, ADMIN),
    **_console("/staff", ADMIN_AUDITOR | {OP_STORE_MANAGER}, None),
    **_console("/staff/new", ADMIN_MANAGER, ADMIN_MANAGER),
    **_console("/staff/<int:staff_id>/edit", ADMIN_MANAGER, ADMIN_MANAGER),
    **_console("/staff/<int:staff_id>/active", None, ADMIN_MANAGER),
    **_console("/operators/new", ADMIN, ADMIN),
    **_console("/operators/<int:operator_id>/edit", ADMIN, ADMIN),
    **_console("/operators/<int:operator_id>/active", None, ADMIN),
    **_console("/operators/<int:operator_id>/password", None, ADMIN),
    **_console("/pos-terminals", ADMIN_AUDITOR, None),
    **_console("/pos-terminals/new", ADMIN, ADMIN),
    **_console("/pos-terminals/<int:terminal_id>/key-rotation", None, ADMIN),
    **_console("/pos-terminals/<int:terminal_id>/deactivation", None, ADMIN),
}

# URL parameter → the object it names (a key of World.ids). Spares are objects no actor relies on, so
# that switching one off or deleting it signs nobody out.
PATH_IDS = {
    "member_id": "member_a",
    "coupon_id": "coupon_a",
    "plate": "plate_a",
    "template_id": "template",
    "purchase_id": "purchase_a",
    "redemption_id": "redemption",
    "task_id": "task_a",
    "staff_id": "other_advisor",
    "operator_id": "spare_operator",
    "terminal_id": "spare_terminal",
    "partner_id": "spare_partner",
    "tier_id": "spare_tier",
    "tag_id": "tag",
    "segment_id": "segment",
    "rule_id": "task_rule",
    "rate_id": "rate",
    "promotion_id": "promotion",
    "bonus_id": "bonus",
    "campaign_id": "campaign",
    "job_id": "import_job",
    "scene_id": "scene",
    "store_id": "store1",
}
# Deleting comes after the pages that show or edit what is deleted, and members erasing their own
# account after everything else.
LAST = {("/api/mp/v1/me", "DELETE")}


def _order(key: tuple[str, str]) -> tuple[bool, bool, tuple[str, str]]:
    rule, method = key
    return key in LAST, method == "DELETE" or rule.endswith("/delete"), key


ORDER = sorted(ACCESS, key=_order)


def _endpoints(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in NOT_ENDPOINTS and not rule.rule.startswith(NOT_ENDPOINT_PREFIXES)
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


@pytest.fixture(scope="module")
def world(database_url: str, sandbox: SandboxProcess) -> Iterator[tuple[Flask, World]]:
    with running_app(build_config(database_url, sandbox), sandbox) as app:
        with autocommit_session(database_url) as session:
            built = build_world(app, session, sandbox)
        yield app, built


def test_every_endpoint_has_an_access_rule(world: tuple[Flask, World]) -> None:
    app, _ = world
    routes = _endpoints(app)

    missing = sorted(routes - ACCESS.keys())
    stale = sorted(ACCESS.keys() - routes)

    assert not missing, (
        "These endpoints have no access rule: add a row for each to ACCESS in "
        f"tests/app/test_access_matrix.py saying who may call it: {missing}"
    )
    assert not stale, f"ACCESS has rows for endpoints that no longer exist: {stale}"


def _path(rule: str, ids: dict[str, Any]) -> str:
    path = rule
    for converter in ("int", "string"):
        for name, key in PATH_IDS.items():
            path = path.replace(f"<{converter}:{name}>", str(ids[key]))
    assert "<" not in path, f"no object for a parameter of {rule}: add it to PATH_IDS"
    return path


def _refused(response: TestResponse, access: Access) -> bool:
    if response.status_code in (401, 403):
        return True
    if response.status_code == 404 and access.hides:
        return True
    return response.status_code in (301, 302, 303) and _to_login(response)


def _to_login(response: TestResponse) -> bool:
    return urlsplit(response.headers.get("Location", "")).path in LOGIN_PAGES


def _call(app: Flask, world: World, actor_name: str, rule: str, method: str, access: Access) -> TestResponse:
    response = _send(app, world, actor_name, rule, method, access)
    response.get_data()  # reads a streamed body (CSV reports) to its end, inside its request context
    response.close()
    return response


def _send(app: Flask, world: World, actor_name: str, rule: str, method: str, access: Access) -> TestResponse:
    client = app.test_client(use_cookies=False)
    path = _path(rule, world.ids)
    actor = world.actors[actor_name]
    if method == "GET":
        return actor.request(client, method, path)
    if path.startswith(("/console/", "/wecom/advisor/", "/wecom/merchant/")):
        return actor.request(client, method, path, form={})
    if path.startswith("/wecom/callback"):
        return actor.request(client, method, path)
    body = access.body(world.ids) if access.body else {}
    return actor.request(client, method, path, json_body=body)


@pytest.mark.parametrize(("rule", "method"), ORDER, ids=[f"{method} {rule}" for rule, method in ORDER])
def test_access(world: tuple[Flask, World], rule: str, method: str) -> None:
    app, built = world
    access = ACCESS[(rule, method)]
    refused_first = sorted(ALL_ACTORS, key=lambda name: (name in access.allowed, ALL_ACTORS.index(name)))
    wrong = []
    for actor in refused_first:
        response = _call(app, built, actor, rule, method, access)
        status = response.status_code
        if status >= 500:
            wrong.append(f"{actor}: {status} (a server error)")
        elif access.public:
            continue
        elif actor in access.allowed and (status in (401, 403) or _to_login(response)):
            wrong.append(f"{actor} should be allowed, got {status} {_said(response)}")
        elif actor not in access.allowed and not _refused(response, access):
            wrong.append(f"{actor} should be refused, got {status} {_said(response)}")

    assert not wrong, f"{method} {rule}:\n" + "\n".join(wrong)


def _said(response: TestResponse) -> str:
    if response.is_json:
        body = response.get_json()
        return str(body.get("code")) if isinstance(body, dict) else ""
    return response.headers.get("Location", "")


# Ids past what an INTEGER column holds (and past what SQLite's driver can even bind).
HUGE_IDS = ("2147483648", "99999999999999999999")
ID_RULES = sorted(
    (rule, method) for rule, method in ACCESS if "<int:" in rule and not ACCESS[(rule, method)].public
)


@pytest.mark.parametrize(("rule", "method"), ID_RULES, ids=[f"{method} {rule}" for rule, method in ID_RULES])
def test_an_id_beyond_the_database_range_is_a_clean_404(
    world: tuple[Flask, World], rule: str, method: str
) -> None:
    app, built = world
    access = ACCESS[(rule, method)]
    caller = built.actors[min(access.allowed, key=ALL_ACTORS.index) if access.allowed else ANONYMOUS]
    client = app.test_client(use_cookies=False)

    for huge in HUGE_IDS:
        path = re.sub(r"<int:[a-z_]+>", huge, rule)
        path = _path(path, built.ids)
        if method == "GET":
            response = caller.request(client, method, path)
        elif path.startswith(("/console/", "/wecom/")):
            response = caller.request(client, method, path, form={})
        else:
            response = caller.request(client, method, path, json_body={})

        assert response.status_code == 404, (
            path,
            response.status_code,
            response.get_data(as_text=True)[:200],
        )
        assert response.get_json()["code"] == "NOT_FOUND", path


def test_an_id_beyond_the_database_range_in_a_reassignment_is_refused_as_input(
    world: tuple[Flask, World],
) -> None:
    app, built = world
    client = app.test_client(use_cookies=False)
    admin, huge = built.actors[OP_ADMIN], HUGE_IDS[-1]
    advisor_id = built.ids["advisor"]

    page_from = admin.request(client, "POST", "/console/advisors/reassign", form={"from_staff_id": huge})
    page_to = admin.request(
        client,
        "POST",
        "/console/advisors/reassign",
        form={"from_staff_id": str(advisor_id), "to_staff_id": huge},
    )
    api_to = admin.request(
        client, "POST", f"/api/admin/v1/advisors/{advisor_id}/reassign", json_body={"to_staff_id": int(huge)}
    )

    assert (page_from.status_code, page_to.status_code, api_to.status_code) == (422, 422, 422)
    assert api_to.get_json()["code"] == "VALIDATION_ERROR"
