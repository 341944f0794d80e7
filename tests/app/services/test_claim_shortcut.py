"""The flash claim's sold-out memory against a real Redis: which claims it refuses, and what it asks Redis.

How it answers over HTTP is in tests/miniprogram_api/test_flash_claims.py; here are the cases a
flash claim does not reach: a template with more claim marks than a process copies, and a mark list
that expired and started again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from app.config import Config
from app.services.coupon_claims import ClaimShortcut

TEMPLATE = 7


class CountingRedis(redis.Redis):
    """A client that counts the EXISTS lookups it sends."""

    exists_calls = 0

    def exists(self, *names: str) -> int:  # type: ignore[override]
        self.exists_calls += 1
        return super().exists(*names)


@pytest.fixture
def client(redis_config: Config) -> Iterator[CountingRedis]:
    connection = CountingRedis.from_url(redis_config.REDIS_URL)
    yield connection
    connection.close()


def shortcut(client: redis.Redis, *, local_marks_limit: int = 100) -> ClaimShortcut:
    # A clock that stands still: the template stays remembered sold out for the whole test.
    return ClaimShortcut(client, memory_ms=1000, clock=lambda: 0.0, local_marks_limit=local_marks_limit)


def test_claims_that_reached_the_database_are_never_refused_and_the_others_are_from_memory(
    client: CountingRedis,
) -> None:
    attempts = shortcut(client)
    attempts.mark_attempt(TEMPLATE, 1, "key-one")
    attempts.mark_attempt(TEMPLATE + 1, 2, "key-two")  # another template's claim
    remembering = shortcut(client)  # another worker
    remembering.note_sold_out(TEMPLATE)

    assert not remembering.refuses(TEMPLATE, 1, "key-one")
    assert remembering.refuses(TEMPLATE, 2, "key-two")
    assert remembering.refuses(TEMPLATE, 1, "key-other")
    assert not remembering.refuses(TEMPLATE + 1, 2, "key-two")  # not seen sold out
    assert client.exists_calls == 0


def test_marks_made_after_a_copy_arrive_with_the_next_sell_out_seen(client: CountingRedis) -> None:
    remembering = shortcut(client)
    remembering.mark_attempt(TEMPLATE, 1, "early")
    remembering.note_sold_out(TEMPLATE)
    shortcut(client).mark_attempt(TEMPLATE, 2, "late")  # stock added, claimed elsewhere

    refused_before = remembering.refuses(TEMPLATE, 2, "late")
    remembering.note_sold_out(TEMPLATE)

    assert refused_before
    assert not remembering.refuses(TEMPLATE, 2, "late")
    assert not remembering.refuses(TEMPLATE, 1, "early")


def test_a_template_with_more_marks_than_a_process_copies_is_checked_key_by_key(
    client: CountingRedis,
) -> None:
    remembering = shortcut(client, local_marks_limit=2)
    for account_id in (1, 2, 3):
        remembering.mark_attempt(TEMPLATE, account_id, f"key-{account_id}")
    remembering.note_sold_out(TEMPLATE)

    assert not remembering.refuses(TEMPLATE, 3, "key-3")
    assert remembering.refuses(TEMPLATE, 4, "key-4")
    assert client.exists_calls == 2


def test_a_mark_list_that_expired_and_started_again_is_copied_from_its_start(client: CountingRedis) -> None:
    remembering = shortcut(client)
    for account_id in (1, 2, 3):
        remembering.mark_attempt(TEMPLATE, account_id, f"old-{account_id}")
    remembering.note_sold_out(TEMPLATE)
    client.delete(f"mallmember:claim-marks:{TEMPLATE}")
    remembering.mark_attempt(TEMPLATE, 4, "new-4")

    remembering.note_sold_out(TEMPLATE)

    assert not remembering.refuses(TEMPLATE, 4, "new-4")
    assert remembering.refuses(TEMPLATE, 1, "old-1")  # its list is gone: that mark expired with it
