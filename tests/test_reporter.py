"""The progress reporter in this process against the real Redis: coalescing, keep-alive, and how
a job ends in the job store and in Celery's eyes."""

import threading
import time

import pytest
from celery.exceptions import Ignore
from flask_socketio import SocketIO

from processes import wait_for
from tasks.reporter import KEEPALIVE_INTERVAL, ProgressReporter, run_job


def keepalive_threads(job_id):
    return [t for t in threading.enumerate() if t.name == f"keepalive-{job_id[:8]}"]


@pytest.fixture
def job_id(store):
    return store.create("sleep", {})["job_id"]


@pytest.fixture
def emitter(settings):
    """A write-only emitter on the message queue, as a worker has."""
    return SocketIO(message_queue=settings.message_queue, async_mode="threading")


def test_a_coalesced_value_goes_out_within_the_interval_though_the_job_calls_nothing(store, job_id, emitter):
    reporter = ProgressReporter(job_id, store, emitter, min_interval=0.3)
    assert reporter.start()
    try:
        reporter.progress(1, 10)  # too soon after STARTED: held back
        assert store.get(job_id)["current"] == 0
        held_at = time.monotonic()
        wait_for(lambda: store.get(job_id)["current"] == 1, 0.3 + 0.5, 0.01,
                 message="the held value to go out on its own")
        assert time.monotonic() - held_at < 0.3 + 0.5
    finally:
        reporter.stop()


def test_a_job_reporting_every_100_ms_loses_nothing_at_the_default_interval(store, job_id, emitter):
    reporter = ProgressReporter(job_id, store, emitter, min_interval=0.1)
    assert reporter.start()
    try:
        for n in range(1, 21):
            time.sleep(0.1)  # the job's own pace
            reporter.progress(n, 20)
        wait_for(lambda: store.get(job_id)["current"] == 20, 2, message="the last step")
        currents = [s["current"] for s in store.history(job_id) if s["state"] == "PROGRESS"]
        assert currents == list(range(1, 21))
    finally:
        reporter.stop()


def test_the_keep_alive_thread_ends_when_the_job_was_ended_elsewhere(store, job_id):
    def body(reporter):
        store.update(job_id, state="LOST", message="lost")  # a web process gave up on it
        reporter.log("still here")  # refused: the job is final

    with pytest.raises(Ignore):
        run_job(job_id, body)
    wait_for(lambda: not keepalive_threads(job_id), 3 * KEEPALIVE_INTERVAL,
             message="the keep-alive thread to end")


def test_a_cancel_that_arrives_during_the_last_step_lets_the_finished_work_win(store, job_id):
    def body(reporter):
        for step in reporter.steps(3):
            if step == 3:
                store.cancel(job_id)
                wait_for(reporter.cancelled.is_set, 3 * KEEPALIVE_INTERVAL,
                         message="the worker to notice the cancel")
        return {"done": 3}

    assert run_job(job_id, body) == {"done": 3}
    final = store.get(job_id)
    assert (final["state"], final["result"], final["current"]) == ("SUCCESS", {"done": 3}, 3)


def test_a_cancel_that_arrives_with_work_left_ends_the_job_revoked_for_celery_too(store, job_id):
    def body(reporter):
        for step in reporter.steps(5):
            if step == 2:
                store.cancel(job_id)
                wait_for(reporter.cancelled.is_set, 3 * KEEPALIVE_INTERVAL, message="the cancel")
        return {"done": 5}

    with pytest.raises(Ignore):  # not a success in Celery's eyes
        run_job(job_id, body)
    assert store.get(job_id)["state"] == "REVOKED"
    assert not keepalive_threads(job_id)


def test_a_failing_job_is_recorded_first_then_fails_in_celerys_eyes(store, job_id):
    class Broken(RuntimeError):
        pass

    def body(reporter):
        raise Broken("disk full")

    with pytest.raises(Broken):
        run_job(job_id, body)
    final = store.get(job_id)
    assert (final["state"], final["error"]) == ("FAILURE", "Broken: disk full")
    assert [s["state"] for s in store.history(job_id)] == ["PENDING", "STARTED", "FAILURE"]
