"""``notifier.celery.ProgressTask`` with a real prefork worker: what ``apply_async`` records,
how ``update_state`` reads (odd metas included), results and exceptions, and Celery's result
backend still seeing what the task reports. The example app (test_example_app.py) covers the
rest from a user's install: live events, the page, failure, revoke, an untracked task."""

import datetime
import os
import uuid

import pytest
import redis

from processes import BIN, ROOT, Process, process_env, wait_for

pytestmark = [pytest.mark.e2e]

REDIS_DB_PROGRESS = 5


@pytest.fixture(scope="module")
def url(redis_server):
    from conftest import REDIS_BASE

    return f"{REDIS_BASE}/{REDIS_DB_PROGRESS}"


@pytest.fixture(scope="module")
def progress_app(url, log_dir):
    """The test app (tests/progress_app.py) and a real prefork worker for it; every report is
    its own event (no coalescing), so each ``update_state`` can be read back."""
    redis.Redis.from_url(url).flushdb()
    env = process_env(url, PROGRESS_MIN_INTERVAL=0, PYTHONPATH=os.path.join(ROOT, "tests"))
    worker = Process("progress-worker", [os.path.join(BIN, "celery"), "-A", "progress_app", "worker", "--pool=prefork",
                                         "--concurrency=2", "--loglevel=INFO", "--without-gossip",
                                         "--without-mingle", "-n", f"progress{uuid.uuid4().hex[:6]}@%h"],
                     env, log_dir).start()
    wait_for(lambda: worker.alive() and " ready." in worker.output(), 60, 0.1, message="worker ready")
    saved = os.environ["REDIS_URL"]
    os.environ["REDIS_URL"] = url  # the producer side (this process) reads it too
    import progress_app as module
    from notifier import reporter

    reporter.producer_store.cache_clear()
    try:
        yield module
    finally:
        os.environ["REDIS_URL"] = saved
        reporter.producer_store.cache_clear()
        worker.stop()


@pytest.fixture
def store(url):
    from notifier.settings import Settings
    from notifier.store import JobStore

    return JobStore.from_settings(Settings.from_env({"REDIS_URL": url}))


def finished(store, job_id, timeout=30):
    """The job's final snapshot, once there is one (a job may not exist yet)."""
    from notifier.store import JobNotFound

    def final():
        try:
            snapshot = store.get(job_id)
        except JobNotFound:
            return None
        return snapshot["finished_at"] and snapshot

    return wait_for(final, timeout, message=f"job {job_id} to end")


def test_the_job_exists_pending_once_delay_returns(progress_app, store):
    result = progress_app.echo.delay(size=3, name="x")
    snapshot = store.get(result.id)
    assert result.job == snapshot
    from notifier import access

    # The caller holds the cancel token; the store only its hash, never in a snapshot.
    assert access.matches(result.cancel_token, store.get_field(result.id, access.HASH_FIELD))
    assert result.cancel_token not in str(snapshot)
    assert {k: snapshot[k] for k in ("kind", "params")} == {"kind": "progress_app.echo",
                                                            "params": {"size": 3, "name": "x"}}
    assert store.history(result.id)[0]["state"] == "PENDING" and store.history(result.id)[0]["seq"] == 0
    final = finished(store, result.id)
    assert final["state"] == "SUCCESS" and final["result"] == 2
    states = [event["state"] for event in store.history(result.id)]
    assert states[:2] == ["PENDING", "STARTED"] and states[-1] == "SUCCESS"
    assert final["message"] == "done" and "2 kwargs" in [e["message"] for e in store.history(result.id)]


def test_a_task_sent_by_name_gets_its_job_when_it_starts(progress_app, store):
    result = progress_app.app.send_task("progress_app.echo", kwargs={"a": 1})
    final = finished(store, result.id)
    assert (final["state"], final["kind"], final["params"], final["result"]) == \
        ("SUCCESS", "progress_app.echo", {"a": 1}, 1)


def test_a_retried_task_waits_pending_then_runs_again_as_the_same_job(progress_app, store):
    result = progress_app.flaky_once.delay()
    final = finished(store, result.id)
    assert final["state"] == "SUCCESS" and final["result"] == {"retries": 1}
    events = [(e["state"], e["message"]) for e in store.history(result.id)]
    assert events[:4] == [("PENDING", "queued"), ("STARTED", "started"), ("PENDING", "retrying in 0s"),
                          ("STARTED", "restarted (attempt 2)")]
    assert [e["seq"] for e in store.history(result.id)] == list(range(final["seq"] + 1))
    assert result.get(timeout=10) == {"retries": 1}


def test_kwargs_that_are_not_json_give_empty_params(progress_app, store):
    result = progress_app.echo.delay(when=datetime.datetime(2026, 1, 1))
    assert store.get(result.id)["params"] == {}
    assert finished(store, result.id)["state"] == "SUCCESS"


def test_odd_metas_are_progress_with_what_can_be_read_and_never_crash_the_task(progress_app, store):
    result = progress_app.odd_reports.delay()
    final = finished(store, result.id)
    assert final["state"] == "SUCCESS" and final["result"] == {"ok": True}
    progress = [(e["current"], e["total"], e["message"]) for e in store.history(result.id)
                if e["state"] == "PROGRESS"]
    assert progress == [
        (0, None, "started"),  # a meta that is not a dict: nothing to read
        (0, None, "current is text"),  # numbers that are not numbers are left out
        (0, None, "nan total"),
        (0, None, "UPLOADING: to the archive"),  # a custom state names itself
        (0, None, "CHECKING"),
        (2, 4, "half"),  # celery-progress's meta
    ]
    assert result.get(timeout=10) == {"ok": True}


def test_a_report_without_a_state_is_plain_progress():
    from notifier.celery import progress_from_meta

    # update_state(meta=...) leaves ``state`` None: no custom state's name to put in the message.
    assert progress_from_meta(None, {"current": 1, "total": 4, "status": "copying"}) == (1, 4, "copying")
    assert progress_from_meta(None, None) == (None, None, None)


def test_a_task_revoked_before_it_runs_ends_its_job_revoked(progress_app, store):
    task_id = str(uuid.uuid4())
    # Once the worker has answered, it knows the id before the task's message reaches it.
    assert progress_app.app.control.revoke(task_id, reply=True, timeout=10, limit=1)
    progress_app.echo.apply_async(task_id=task_id)
    final = finished(store, task_id)
    assert (final["state"], final["message"]) == ("REVOKED", "revoked")
    assert [e["state"] for e in store.history(task_id)] == ["PENDING", "REVOKED"]


def test_a_result_that_is_not_json_is_a_failure_that_says_so(progress_app, store):
    result = progress_app.returns_a_set.delay()
    final = finished(store, result.id)
    assert final["state"] == "FAILURE"
    assert final["error"].startswith("the result could not be stored as JSON")
    assert result.wait(timeout=10, propagate=False).__class__.__name__ == "NotStorable"


def test_the_result_backend_still_sees_progress_meta_while_the_job_runs(progress_app, store):
    key = f"release-{uuid.uuid4().hex}"
    result = progress_app.wait_for_key.delay(key)
    wait_for(lambda: result.state == "PROGRESS", 30, message="PROGRESS in the result backend")
    assert result.info == {"current": 1, "total": 2, "status": "waiting"}
    running = store.get(result.id)
    assert (running["state"], running["current"], running["total"], running["message"]) == \
        ("PROGRESS", 1, 2, "waiting")
    redis.Redis.from_url(progress_app.URL).rpush(key, "go")
    assert result.get(timeout=30) == {"waited": key}
    assert finished(store, result.id)["result"] == {"waited": key}


def test_a_broker_that_refuses_the_message_leaves_no_job(url, store):
    from celery import Celery
    from notifier.celery import ProgressTask

    closed = Celery("refused", broker="redis://127.0.0.1:1/0", task_cls=ProgressTask)
    closed.conf.update(broker_connection_timeout=1, broker_connection_retry=False,
                       task_publish_retry_policy={"max_retries": 0})

    @closed.task(bind=True)
    def never(self):
        return None

    saved = os.environ["REDIS_URL"]
    os.environ["REDIS_URL"] = url
    from notifier import reporter

    reporter.producer_store.cache_clear()
    try:
        before = set(store.redis.keys("notifier:job:*"))
        with pytest.raises(Exception):
            never.apply_async(task_id=str(uuid.uuid4()), retry=False)
        assert set(store.redis.keys("notifier:job:*")) == before
    finally:
        os.environ["REDIS_URL"] = saved
        reporter.producer_store.cache_clear()


def test_a_task_called_directly_is_not_a_job(progress_app, store):
    before = set(store.redis.keys("notifier:job:*"))
    assert progress_app.echo(a=1) == 1  # self.reporter reports nowhere
    assert set(store.redis.keys("notifier:job:*")) == before
