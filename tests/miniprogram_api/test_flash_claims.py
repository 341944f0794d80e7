"""What keeps a flash claim (抢券) cheap: sold-out answers from memory, templates kept per worker.

A second app on the same database stands in for another gunicorn worker.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from app import create_app
from app.config import Config
from app.db import bound_database
from app.models import CouponTemplate
from tests import factories
from tests.flows import bearer, operator_login, registered_shopper
from tests.observe import statements_during

MEMORY_MS = 500


@pytest.fixture
def tiers(session: Session) -> list:
    return factories.create_tiers(session)


def worker_app(config: Config) -> Iterator[Flask]:
    worker = create_app(config)
    yield worker
    bound_database(worker).engine.dispose()


@pytest.fixture
def worker(redis_config: Config) -> Iterator[Flask]:
    """A worker with Redis, remembering a sold-out template for MEMORY_MS."""
    yield from worker_app(redis_config.with_overrides(SOLD_OUT_MEMORY_MS=MEMORY_MS))


@pytest.fixture
def other_worker(config: Config) -> Iterator[Flask]:
    yield from worker_app(config)


@pytest.fixture
def second_worker(redis_config: Config) -> Iterator[Flask]:
    """Another worker like `worker`, with its own memory."""
    yield from worker_app(redis_config.with_overrides(SOLD_OUT_MEMORY_MS=MEMORY_MS))


def claim(client: FlaskClient, token: str, template_id: int, key: str | None = None) -> TestResponse:
    headers = {**bearer(token), "Idempotency-Key": key or uuid.uuid4().hex}
    return client.post(f"/api/mp/v1/coupon-templates/{template_id}/claims", headers=headers)


def shoppers(client: FlaskClient, count: int) -> list[str]:
    return [registered_shopper(client, f"o-flash-{n}", f"1390013900{n}")[0] for n in range(count)]


def claim_watched(app: Flask, token: str, template_id: int) -> tuple[TestResponse, list[str]]:
    answers: list[TestResponse] = []
    statements = statements_during(app, lambda: answers.append(claim(app.test_client(), token, template_id)))
    return answers[0], statements


@pytest.fixture
def redis_commands(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every command (or pipeline) any Redis client of this process sends, as written to the socket."""
    sent: list[bytes] = []
    send = redis.connection.AbstractConnection.send_packed_command

    def counting(connection: Any, command: Any, check_health: bool = True) -> None:
        sent.append(command if isinstance(command, bytes) else b"".join(command))
        send(connection, command, check_health)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sent


def test_once_sold_out_a_worker_refuses_claims_without_the_database_or_redis(
    worker: Flask, session: Session, tiers: list, redis_commands: list[bytes]
) -> None:
    client = worker.test_client()
    template = factories.create_coupon_template(session, total_stock=1)
    first, second, third = shoppers(client, 3)
    assert claim(client, first, template.id).status_code == 201

    learned = claim(client, second, template.id)
    redis_commands.clear()
    refused, statements = claim_watched(worker, third, template.id)

    assert learned.get_json()["code"] == "COUPON_SOLD_OUT"
    assert (refused.status_code, refused.get_json()["code"]) == (409, "COUPON_SOLD_OUT")
    assert refused.get_json()["message"] == "优惠券已抢光"
    assert statements == []
    assert redis_commands == []


def test_a_claim_won_in_another_worker_is_given_back_where_the_sell_out_is_remembered(
    worker: Flask, second_worker: Flask, session: Session, tiers: list
) -> None:
    template = factories.create_coupon_template(session, total_stock=1)
    winner, loser = shoppers(worker.test_client(), 2)
    won = claim(second_worker.test_client(), winner, template.id, key="winning-claim-2")
    assert claim(worker.test_client(), loser, template.id).get_json()["code"] == "COUPON_SOLD_OUT"

    retried = claim(worker.test_client(), winner, template.id, key="winning-claim-2")
    stranger = claim(worker.test_client(), winner, template.id, key="another-claim-2")

    assert (won.status_code, retried.status_code) == (201, 201)
    assert retried.get_json()["id"] == won.get_json()["id"]
    assert stranger.get_json()["code"] == "COUPON_SOLD_OUT"


def test_a_retried_winning_claim_still_gets_its_coupon_after_the_sell_out(
    worker: Flask, session: Session, tiers: list
) -> None:
    client = worker.test_client()
    template = factories.create_coupon_template(session, total_stock=1)
    winner, loser = shoppers(client, 2)
    won = claim(client, winner, template.id, key="winning-claim-1")
    assert claim(client, loser, template.id).get_json()["code"] == "COUPON_SOLD_OUT"

    retried = claim(client, winner, template.id, key="winning-claim-1")

    assert (won.status_code, retried.status_code) == (201, 201)
    assert retried.get_json()["id"] == won.get_json()["id"]


def test_stock_added_is_claimable_once_the_memory_lapses(
    worker: Flask, session: Session, tiers: list
) -> None:
    client = worker.test_client()
    template = factories.create_coupon_template(session, total_stock=1)
    first, second = shoppers(client, 2)
    claim(client, first, template.id)
    assert claim(client, second, template.id).get_json()["code"] == "COUPON_SOLD_OUT"
    session.execute(update(CouponTemplate).values(total_stock=2, remaining_stock=1))
    session.commit()

    still_remembered = claim(client, second, template.id)
    time.sleep(MEMORY_MS / 1000 + 0.1)
    after_the_memory = claim(client, second, template.id)

    assert still_remembered.get_json()["code"] == "COUPON_SOLD_OUT"
    assert after_the_memory.status_code == 201


def test_without_redis_every_claim_asks_the_database(
    app: Flask, client: FlaskClient, session: Session, tiers: list
) -> None:
    template = factories.create_coupon_template(session, total_stock=0)
    first, second = shoppers(client, 2)
    assert claim(client, first, template.id).get_json()["code"] == "COUPON_SOLD_OUT"

    refused, statements = claim_watched(app, second, template.id)

    assert refused.get_json()["code"] == "COUPON_SOLD_OUT"
    assert any("from coupon_templates" in sql for sql in statements)


def test_claims_go_on_when_redis_is_down(
    client: FlaskClient, config: Config, session: Session, tiers: list
) -> None:
    template = factories.create_coupon_template(session, total_stock=1)
    first, second, third = shoppers(client, 3)
    worker = create_app(config.with_overrides(REDIS_URL="redis://127.0.0.1:1/0"))

    answers = [claim(worker.test_client(), token, template.id) for token in (first, second, third)]

    assert [answer.status_code for answer in answers] == [201, 409, 409]
    assert answers[2].get_json()["code"] == "COUPON_SOLD_OUT"
    bound_database(worker).engine.dispose()


def edit_body(**terms: Any) -> dict[str, Any]:
    return {
        "kind": "cash_off",
        "name": "满100减20",
        "face_value_fen": 2_000,
        "min_spend_fen": 10_000,
        "total_stock": 100,
        "per_member_limit": 5,
        "valid_days_after_issue": 30,
        **terms,
    }


def test_a_worker_keeps_the_template_and_sees_an_edit_at_once(
    app: Flask, client: FlaskClient, other_worker: Flask, session: Session, tiers: list
) -> None:
    factories.create_operator(session, "ops", "correct-horse")
    template = factories.create_coupon_template(session, per_member_limit=5)
    (token,) = shoppers(client, 1)
    assert claim(client, token, template.id).get_json()["face_value_fen"] == 2_000

    warm, statements = claim_watched(app, token, template.id)
    other = other_worker.test_client()
    edited = other.put(
        f"/api/admin/v1/coupon-templates/{template.id}",
        json=edit_body(name="满100减25", face_value_fen=2_500),
        headers=bearer(operator_login(other)),
    )
    after_the_edit = claim(client, token, template.id)
    template.min_spend_fen = 5_000  # an edit through the ORM counts too
    session.commit()
    after_an_orm_edit = claim(client, token, template.id)

    assert warm.status_code == 201
    assert not any("coupon_templates.face_value_fen" in sql for sql in statements)
    assert edited.status_code == 200, edited.get_json()
    assert after_the_edit.get_json()["name"] == "满100减25"
    assert after_the_edit.get_json()["face_value_fen"] == 2_500
    assert after_an_orm_edit.get_json()["min_spend_fen"] == 5_000
