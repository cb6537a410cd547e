"""The progress reporter in this process against the real Redis: coalescing, keep-alive, and how
a job ends in the job store and in Celery's eyes."""

import threading
import time

import pytest
from celery.exceptions import Ignore
from flask_socketio import SocketIO

from processes import wait_for
from notifier.reporter import KEEPALIVE_INTERVAL, LEASE, ProgressReporter, run_job
from notifier.store import JobRefused, NotStorable


def keepalive_threads(job_id):
    return [t for t in threading.enumerate() if t.name == f"keepalive-{job_id[:8]}"]


def fall_silent(reporter, store):
    """Stop a runner's keep-alive and date its last sign of life a lease back, as if its process
    had been frozen or cut off that long: the next delivery of its job may take it over."""
    reporter.stop()
    wait_for(lambda: not keepalive_threads(reporter.job_id), 3 * KEEPALIVE_INTERVAL,
             message="the keep-alive thread to end")
    key, running = f"notifier:job:{reporter.job_id}", "notifier:running"
    store.redis.zadd(running, {key: store.redis.zscore(running, key) - LEASE - 1})


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


def test_a_held_back_value_goes_out_before_a_log_message(store, job_id, emitter):
    reporter = ProgressReporter(job_id, store, emitter, min_interval=60)  # nothing flushes on its own
    assert reporter.start()
    try:
        reporter.progress(1, 10, "step 1 of 10")  # too soon after STARTED: held back
        assert store.get(job_id)["current"] == 0
        reporter.log("checkpoint written")
    finally:
        reporter.stop()
    assert [(s["state"], s["current"], s["message"]) for s in store.history(job_id)] == [
        ("PENDING", 0, "queued"), ("STARTED", 0, "started"),
        ("PROGRESS", 1, "step 1 of 10"), ("PROGRESS", 1, "checkpoint written")]


def test_a_held_back_value_goes_out_before_the_final_event(store, job_id, emitter):
    reporter = ProgressReporter(job_id, store, emitter, min_interval=60)  # nothing flushes on its own
    assert reporter.start()
    try:
        reporter.progress(3, 10, "step 3 of 10")  # too soon after STARTED: held back
        assert store.get(job_id)["current"] == 0
        reporter.finish("FAILURE", error="RuntimeError: disk full", message="failed")
    finally:
        reporter.stop()
    assert [(s["state"], s["current"], s["message"]) for s in store.history(job_id)] == [
        ("PENDING", 0, "queued"), ("STARTED", 0, "started"),
        ("PROGRESS", 3, "step 3 of 10"), ("FAILURE", 3, "failed")]


def test_the_keep_alive_thread_ends_when_the_job_was_ended_elsewhere(store, job_id):
    def body(reporter):
        store.update(job_id, state="LOST", message="lost")  # a web process gave up on it
        reporter.log("still here")  # refused: the job is final

    with pytest.raises(Ignore):
        run_job(job_id, body)
    wait_for(lambda: not keepalive_threads(job_id), 3 * KEEPALIVE_INTERVAL,
             message="the keep-alive thread to end")


def test_once_a_job_has_ended_its_keep_alive_thread_has_too_though_it_was_mid_touch(store, job_id, emitter):
    reporter = ProgressReporter(job_id, store, emitter)
    touching, touch = threading.Event(), store.touch

    def slow_touch(*args, **kwargs):  # the keep-alive's write in flight as the job ends
        touching.set()
        time.sleep(KEEPALIVE_INTERVAL / 2)
        return touch(*args, **kwargs)

    reporter.store = type("SlowTouch", (), {"__getattr__": lambda _, name: getattr(store, name),
                                            "touch": staticmethod(slow_touch)})()
    assert reporter.start()
    assert touching.wait(3 * KEEPALIVE_INTERVAL)
    reporter.finish("SUCCESS", result={}, message="done")
    assert not keepalive_threads(job_id)


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


def test_after_a_takeover_the_old_runner_can_change_nothing(store, job_id, emitter):
    old = ProgressReporter(job_id, store, emitter, min_interval=0)
    assert old.start()
    fall_silent(old, store)
    new = ProgressReporter(job_id, store, emitter, min_interval=0)
    assert new.start()  # at once: the old runner's lease ran out
    try:
        for late in (lambda: old.progress(1, 10, "late"), lambda: old.log("late"),
                     lambda: old.finish("SUCCESS", result={"by": "old"}, message="done")):
            with pytest.raises(JobRefused):
                late()
        new.progress(1, 10, "step 1 of 10")
    finally:
        new.stop()
    assert [s["message"] for s in store.history(job_id)] == \
        ["queued", "started", "restarted (attempt 2)", "step 1 of 10"]


def test_a_second_delivery_leaves_a_job_alone_while_its_runner_shows_life(store, job_id, emitter):
    first = ProgressReporter(job_id, store, emitter, min_interval=0)
    assert first.start()
    second = ProgressReporter(job_id, store, emitter, min_interval=0)
    try:
        assert not second.start()  # it waits out a lease and a beat, then gives up
        first.progress(1, 2, "step 1 of 2")  # the job is still the first runner's
    finally:
        first.stop()
        second.stop()
    assert store.get_field(job_id, "runner") == first.runner
    assert [s["message"] for s in store.history(job_id)] == ["queued", "started", "step 1 of 2"]


def test_a_runner_whose_job_was_taken_over_ends_quietly_and_leaves_it_alone(store, job_id, emitter):
    taken_over = []

    def body(reporter):
        fall_silent(reporter, store)
        new = ProgressReporter(job_id, store, emitter, min_interval=0)
        assert new.start()
        new.stop()
        taken_over.append(store.get(job_id))
        return {"by": "old"}  # its final event must not land on the new runner's job

    with pytest.raises(Ignore):  # neither a success nor a failure in Celery's eyes
        run_job(job_id, body)
    assert store.get(job_id) == taken_over[0]
    assert store.get(job_id)["state"] == "STARTED"


def test_a_result_that_is_not_json_ends_the_job_failed_saying_so(store, job_id):
    with pytest.raises(NotStorable):  # a failure in Celery's eyes too
        run_job(job_id, lambda reporter: {"primes": {2, 3, 5}})
    final = store.get(job_id)
    assert final["state"] == "FAILURE" and final["result"] is None
    assert "result could not be stored" in final["error"] and "set" in final["error"]
    assert not keepalive_threads(job_id)
