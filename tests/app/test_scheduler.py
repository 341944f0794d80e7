"""The scheduler process: of several, only the holder of the leader lease runs jobs, and another takes
over when the lease expires or is released; every job run is recorded and listed for operators."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app import create_app, jobs
from app.config import PROJECT_ROOT, Config
from app.db import bound_database, run_transaction, transaction, utcnow
from app.models import JobRun
from app.services import scheduling
from tests import factories, flows

T0 = datetime(2030, 1, 1, tzinfo=UTC)
TTL = timedelta(seconds=60)


def acquire(app: Flask, holder: str, at: datetime) -> bool:
    with app.app_context():
        return run_transaction(
            lambda session: scheduling.acquire_lease(session, scheduling.LEADER_LEASE, holder, at, TTL)
        )


def test_of_two_schedulers_one_leads_until_its_lease_expires(app: Flask) -> None:
    assert acquire(app, "first", T0)
    assert not acquire(app, "second", T0)
    # The leader renews; the other keeps being refused while the lease runs.
    assert acquire(app, "first", T0 + timedelta(seconds=50))
    assert not acquire(app, "second", T0 + timedelta(seconds=100))
    # The leader stopped renewing: the lease expires and the other takes over.
    assert acquire(app, "second", T0 + timedelta(seconds=111))
    assert not acquire(app, "first", T0 + timedelta(seconds=112))
    with app.app_context(), transaction() as session:
        holder = scheduling.lease_holder(session, scheduling.LEADER_LEASE, T0 + timedelta(seconds=112))
    assert holder == "second"


def test_a_released_lease_is_taken_over_at_once(app: Flask) -> None:
    first, second = jobs.Leadership(app, "first"), jobs.Leadership(app, "second")
    assert first.hold()
    assert not second.hold()

    first.release()

    assert second.hold()
    assert not first.hold()


def test_only_the_leader_runs_a_scheduled_job_and_the_run_is_recorded(app: Flask, session: Session) -> None:
    leader, follower = jobs.Leadership(app, "host-a:1:leader"), jobs.Leadership(app, "host-b:2:follower")
    assert leader.hold()

    skipped = jobs.run_if_leader(follower, "purge-member-codes")
    outcome = jobs.run_if_leader(leader, "purge-member-codes")

    assert skipped is None
    assert outcome == "purged 0 used member codes"
    runs = session.scalars(select(JobRun)).all()
    assert [(run.job, run.runner, run.outcome) for run in runs] == [
        ("purge-member-codes", "host-a:1:leader", "purged 0 used member codes")
    ]
    assert runs[0].finished_at is not None and runs[0].finished_at >= runs[0].started_at


def test_a_failing_job_records_its_error(
    app: Flask, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> str:
        raise RuntimeError("数据库连接中断")

    monkeypatch.setitem(jobs.JOBS, "purge-member-codes", jobs.Job(broken, {"minute": "*"}))

    with pytest.raises(RuntimeError):
        jobs.run_job(app, "purge-member-codes")

    run = session.scalars(select(JobRun)).one()
    assert run.error == "RuntimeError: 数据库连接中断"
    assert run.finished_at is not None and run.outcome is None


def test_operators_list_job_runs_newest_first_and_see_the_leader(
    app: Flask, client: FlaskClient, session: Session
) -> None:
    factories.create_operator(session)
    token = flows.operator_login(client)
    runner = app.test_cli_runner()
    for name in ("purge-member-codes", "send-outbox", "purge-member-codes"):
        assert runner.invoke(args=["jobs", "run", name]).exit_code == 0
    jobs.Leadership(app, "host-a:1:abc").hold()

    everything = client.get("/api/admin/v1/job-runs", headers=flows.bearer(token))
    one_job = client.get("/api/admin/v1/job-runs?job=send-outbox&per_page=5", headers=flows.bearer(token))
    unknown = client.get("/api/admin/v1/job-runs?job=nope", headers=flows.bearer(token))
    anonymous = client.get("/api/admin/v1/job-runs")

    assert everything.status_code == 200
    body = everything.get_json()
    assert body["total"] == 3 and body["leader"] == "host-a:1:abc"
    assert [item["job"] for item in body["items"]] == [
        "purge-member-codes",
        "send-outbox",
        "purge-member-codes",
    ]
    assert body["items"][0]["id"] > body["items"][2]["id"]
    [send_run] = one_job.get_json()["items"]
    assert send_run["counts"] == {
        "sent": 0,
        "retrying": 0,
        "dead": 0,
        "rate_limited": False,
        "invalid_users": 0,
    }
    assert send_run["runner"] == "cli" and send_run["finished_at"] and send_run["error"] is None
    assert unknown.status_code == 422 and "message" in unknown.get_json()
    assert anonymous.status_code == 401


@pytest.fixture
def slow_job(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """A job "slow-job" that signals `began` and runs until `release` is set."""
    began, release = threading.Event(), threading.Event()

    def slow() -> str:
        began.set()
        assert release.wait(10)
        return "finished"

    monkeypatch.setitem(jobs.JOBS, "slow-job", jobs.Job(slow, {"minute": "*"}))
    yield began, release
    release.set()


def start_slow_run(leadership: jobs.Leadership, began: threading.Event) -> threading.Thread:
    worker = threading.Thread(target=jobs.run_if_leader, args=(leadership, "slow-job"))
    worker.start()
    assert began.wait(10)
    return worker


def test_a_stopping_scheduler_lets_its_running_job_finish_then_hands_over_the_lease(
    app: Flask, session: Session, slow_job: tuple[threading.Event, threading.Event]
) -> None:
    began, release = slow_job
    leader, other = jobs.Leadership(app, "host-a:1:leader"), jobs.Leadership(app, "host-b:2:other")
    scheduler = jobs.build_scheduler(app, leader)
    worker = start_slow_run(leader, began)
    threading.Timer(0.2, release.set).start()

    finished = jobs.stop_scheduler(scheduler, leader, timedelta(seconds=10))

    worker.join(5)
    assert finished is True
    assert leader.running == {}
    run = session.scalars(select(JobRun).where(JobRun.job == "slow-job")).one()
    assert run.outcome == "finished" and run.error is None
    assert other.hold()  # released at once, not after the lease's minute


def test_a_job_still_running_after_the_grace_period_is_recorded_as_interrupted(
    app: Flask, session: Session, slow_job: tuple[threading.Event, threading.Event]
) -> None:
    began, release = slow_job
    leader, other = jobs.Leadership(app, "host-a:1:leader"), jobs.Leadership(app, "host-b:2:other")
    scheduler = jobs.build_scheduler(app, leader)
    worker = start_slow_run(leader, began)

    finished = jobs.stop_scheduler(scheduler, leader, timedelta(seconds=0.2))

    assert finished is False
    run = session.scalars(select(JobRun).where(JobRun.job == "slow-job")).one()
    assert run.error == "interrupted: the scheduler stopped (host-a:1:leader)"
    assert run.finished_at is not None
    assert other.hold()
    release.set()
    worker.join(5)


def test_sigterm_stops_the_scheduler_process_and_releases_its_lease(config: Config) -> None:
    env = {
        **{name: value for name, value in os.environ.items() if name != "SCHEDULER_METRICS_PORT"},
        "DATABASE_URL": config.DATABASE_URL,
        "WECHAT_API_BASE": config.WECHAT_API_BASE,
        "WECOM_API_BASE": config.WECOM_API_BASE,
        "CARPARK_API_BASE": config.CARPARK_API_BASE,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "flask", "--app", "wsgi", "scheduler"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    app = create_app(config)
    try:
        holder = None
        for _ in range(600):
            with app.app_context(), transaction() as work:
                holder = scheduling.lease_holder(work, scheduling.LEADER_LEASE, utcnow())
            if holder or process.poll() is not None:
                break
            time.sleep(0.05)
        assert holder, process.communicate(timeout=5)[0] if process.poll() is not None else "no lease"

        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, output
    assert f"scheduler {holder}: stopped, lease released" in output
    with app.app_context(), transaction() as work:
        assert scheduling.lease_holder(work, scheduling.LEADER_LEASE, utcnow()) is None
    bound_database(app).dispose()
