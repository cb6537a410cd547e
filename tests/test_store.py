"""The job store against a real Redis: seq numbering, final states, history, cancel flags, and
the faults of a real deployment (lost replies, skewed clocks, vanished jobs)."""

import threading
import time

import pytest
import redis

from notifier.store import (FAILURE, LOST, PENDING, PROGRESS, REVOKED, STARTED, SUCCESS,
                            JobNotFound, JobRefused, JobStore, connect, is_job_id)


def test_a_new_job_is_pending_at_seq_zero_with_a_uuid4_id(store):
    job = store.create("sleep", {"steps": 3})
    assert is_job_id(job["job_id"])
    assert (job["state"], job["seq"], job["percent"]) == (PENDING, 0, 0.0)
    assert store.get(job["job_id"]) == job


def test_every_update_bumps_seq_by_one_and_is_kept_in_history(store):
    job_id = store.create("sleep", {})["job_id"]
    store.update(job_id, state=STARTED)
    for n in range(1, 4):
        snapshot = store.update(job_id, state=PROGRESS, current=n, total=4, message=f"step {n}")
    assert snapshot["seq"] == 4 and snapshot["percent"] == 75.0
    history = store.history(job_id)
    assert [s["seq"] for s in history] == [0, 1, 2, 3, 4]
    assert [s["seq"] for s in store.history(job_id, after_seq=2)] == [3, 4]
    assert history[-1] == snapshot


@pytest.mark.parametrize("final_state", [SUCCESS, FAILURE, REVOKED, LOST])
def test_a_final_job_refuses_any_later_change(store, final_state):
    job_id = store.create("sleep", {})["job_id"]
    store.update(job_id, state=STARTED)
    final = store.update(job_id, state=final_state, result={"ok": 1} if final_state == SUCCESS else None)
    assert final["finished_at"] is not None
    assert final["percent"] == 100.0 or final_state != SUCCESS
    for later in (PROGRESS, SUCCESS, FAILURE):
        with pytest.raises(JobRefused) as refused:
            store.update(job_id, state=later, current=1)
        assert refused.value.state == final_state
    assert store.get(job_id)["seq"] == final["seq"]


def test_only_from_guards_the_state_the_change_starts_from(store):
    job_id = store.create("sleep", {})["job_id"]
    with pytest.raises(JobRefused):
        store.update(job_id, only_from=(STARTED, PROGRESS), state=LOST)
    assert store.get(job_id)["state"] == PENDING


def test_unknown_jobs_are_not_found(store):
    with pytest.raises(JobNotFound):
        store.get("6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11")
    with pytest.raises(JobNotFound):
        store.update("6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11", state=STARTED)


def test_cancel_revokes_a_queued_job_at_once_and_flags_a_running_one(store):
    queued = store.create("sleep", {})["job_id"]
    running = store.create("sleep", {})["job_id"]
    store.update(running, state=STARTED)
    done = store.create("sleep", {})["job_id"]
    store.update(done, state=FAILURE, error="boom")
    revoked = store.cancel(queued, message="cancelled before it started")
    assert (revoked["state"], revoked["seq"]) == (REVOKED, 1)
    assert store.cancel(running) is None
    assert store.get_field(running, "cancel_requested") is True
    assert store.get(running)["state"] == STARTED
    with pytest.raises(JobRefused):
        store.cancel(done)


def test_running_jobs_without_sign_of_life_are_reported_stalled(store):
    job_id = store.create("sleep", {})["job_id"]
    store.update(job_id, state=STARTED)
    assert store.running_count() == 1
    assert store.stalled(older_than=60) == []
    assert store.stalled(older_than=0) == [job_id]
    with pytest.raises(JobRefused):  # it showed life moments ago
        store.update(job_id, only_from=(STARTED,), stale_for=60, state=LOST)
    store.update(job_id, state=REVOKED)
    assert store.running_count() == 0


@pytest.mark.parametrize("value", [
    "not-a-uuid", "6f1d3b4e-8a1c-1a5e-9d3f-2b7c1e0a9f11", "6F1D3B4E-8A1C-4A5E-9D3F-2B7C1E0A9F11",
    None, 42, "{6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11}",
])
def test_only_canonical_uuid4_text_is_a_job_id(value):
    assert not is_job_id(value)


# ---- faults of a real deployment ------------------------------------------------------------------

class LoseReplyOnce(redis.Connection):
    """A real connection to the real Redis that, when armed, lets one script call run and then
    raises as if its reply had been lost on the way (a stand-in for a network cut: it cannot be
    timed between Redis's write and its reply with real sockets)."""

    armed = threading.Event()
    meanwhile = None  # what else happens to the job before the retry, if anything

    def send_command(self, *args, **kwargs):
        self._script_call = args[0] == "EVALSHA"
        return super().send_command(*args, **kwargs)

    def read_response(self, *args, **kwargs):
        reply = super().read_response(*args, **kwargs)
        if getattr(self, "_script_call", False) and self.armed.is_set():
            self.armed.clear()
            if LoseReplyOnce.meanwhile:
                LoseReplyOnce.meanwhile()
            raise redis.ConnectionError("reply lost (fault injected)")
        return reply


@pytest.fixture
def flaky_store(settings, store):
    """A patient store (as workers have) whose connection loses one script reply when armed."""
    client = connect(settings.redis_url, patient=True, connection_class=LoseReplyOnce)
    yield JobStore(client)
    LoseReplyOnce.armed.clear()
    LoseReplyOnce.meanwhile = None


def test_a_retried_progress_update_whose_reply_was_lost_bumps_seq_once(flaky_store):
    job_id = flaky_store.create("sleep", {})["job_id"]
    flaky_store.update(job_id, state=STARTED)
    LoseReplyOnce.armed.set()
    snapshot = flaky_store.update(job_id, state=PROGRESS, current=1, total=2)
    assert not LoseReplyOnce.armed.is_set(), "the fault was not injected"
    assert snapshot["seq"] == 2 and flaky_store.get(job_id)["seq"] == 2
    assert [s["seq"] for s in flaky_store.history(job_id)] == [0, 1, 2]


def test_a_retried_final_update_whose_reply_was_lost_returns_what_it_wrote(flaky_store):
    job_id = flaky_store.create("sleep", {})["job_id"]
    flaky_store.update(job_id, state=STARTED)
    LoseReplyOnce.armed.set()
    final = flaky_store.update(job_id, state=SUCCESS, result={"ok": True})  # no JobRefused
    assert not LoseReplyOnce.armed.is_set(), "the fault was not injected"
    assert (final["state"], final["seq"], final["result"]) == (SUCCESS, 2, {"ok": True})
    assert [s["state"] for s in flaky_store.history(job_id)] == [PENDING, STARTED, SUCCESS]


def test_times_and_liveness_come_from_redis_not_from_this_host(store, monkeypatch):
    job_id = store.create("sleep", {})["job_id"]
    monkeypatch.setattr(time, "time", lambda: 0.0)  # this host's clock is off by 56 years
    started = store.update(job_id, state=STARTED)
    redis_now = float(".".join(map(str, store.redis.time())))
    assert abs(started["updated_at"] - redis_now) < 5 and abs(started["created_at"] - redis_now) < 5
    assert store.stalled(older_than=30) == []  # alive by Redis's clock, whatever this host says
    with pytest.raises(JobRefused):  # and a lease check by that clock refuses the takeover
        store.update(job_id, only_from=(STARTED,), stale_for=5, state=STARTED)


def test_running_entries_whose_job_is_gone_are_dropped_and_do_not_hide_stalled_jobs(store):
    ghosts = [store.create("sleep", {})["job_id"] for _ in range(150)]
    for job_id in ghosts:
        store.update(job_id, state=STARTED)
    real = store.create("sleep", {})["job_id"]
    store.update(real, state=STARTED)
    store.redis.delete(*[f"notifier:job:{job_id}" for job_id in ghosts])  # expired or evicted
    assert store.stalled(older_than=0) == [real]
    assert store.running_count() == 1


def test_a_running_job_keeps_its_keys_alive_while_it_shows_life(store):
    job_id = store.create("sleep", {})["job_id"]
    store.update(job_id, state=STARTED)
    for key in (f"notifier:job:{job_id}", f"notifier:history:{job_id}"):
        store.redis.expire(key, 30)
    assert store.touch(job_id) is False
    for key in (f"notifier:job:{job_id}", f"notifier:history:{job_id}"):
        assert store.redis.ttl(key) > 30
    store.cancel(job_id)
    assert store.touch(job_id) is True


def test_a_sign_of_life_renews_a_running_jobs_lease(store):
    """A keep-alive during a long step is what keeps a silent job from being declared LOST or
    taken over: it must move the job's last sign of life to now."""
    job_id = store.create("sleep", {})["job_id"]
    store.update(job_id, state=STARTED)
    key, running = f"notifier:job:{job_id}", "notifier:running"
    store.redis.zadd(running, {key: store.redis.zscore(running, key) - 60})  # silent for a minute
    assert store.stalled(older_than=30) == [job_id]
    assert store.touch(job_id) is False
    assert store.stalled(older_than=30) == []
    with pytest.raises(JobRefused):  # nor may another delivery take it over
        store.update(job_id, only_from=(STARTED,), stale_for=5, state=STARTED)


def test_after_redis_forgets_the_scripts_a_change_still_happens_once(store):
    """A restarted Redis has no scripts loaded: the store's fast path falls back and loads them."""
    job_id = store.create("sleep", {})["job_id"]
    store.update(job_id, state=STARTED)
    store.redis.script_flush()
    assert store.update(job_id, state=PROGRESS, current=1, total=2)["seq"] == 2
    assert not store.touch(job_id)
    assert [s["seq"] for s in store.history(job_id)] == [0, 1, 2]


def test_a_retried_create_whose_reply_was_lost_makes_the_job_once(flaky_store):
    LoseReplyOnce.armed.set()
    job = flaky_store.create("sleep", {"steps": 3})  # no error: the retry finds its own job
    assert not LoseReplyOnce.armed.is_set(), "the fault was not injected"
    assert flaky_store.get(job["job_id"]) == job
    assert [s["seq"] for s in flaky_store.history(job["job_id"])] == [0]


def test_a_retried_cancel_whose_reply_was_lost_gets_its_own_revoke_back(flaky_store):
    job_id = flaky_store.create("sleep", {})["job_id"]
    LoseReplyOnce.armed.set()
    revoked = flaky_store.cancel(job_id, message="cancelled before it started")  # no JobRefused
    assert not LoseReplyOnce.armed.is_set(), "the fault was not injected"
    assert (revoked["state"], revoked["seq"]) == (REVOKED, 1)
    assert [s["state"] for s in flaky_store.history(job_id)] == [PENDING, REVOKED]


def test_a_retried_cancel_of_a_job_that_ended_meanwhile_is_still_accepted(flaky_store, store):
    job_id = flaky_store.create("sleep", {})["job_id"]
    flaky_store.update(job_id, state=STARTED)
    # The first call flags the job; its worker sees the flag and ends it before the retry.
    LoseReplyOnce.meanwhile = lambda: store.update(job_id, state=REVOKED, message="cancelled")
    LoseReplyOnce.armed.set()
    assert flaky_store.cancel(job_id) is None  # accepted (flagged), not "already final"
    assert not LoseReplyOnce.armed.is_set(), "the fault was not injected"
    assert store.get(job_id)["state"] == REVOKED


def test_the_history_keeps_about_the_newest_history_length_events(store):
    # Redis trims a capped stream (MAXLEN ~) by whole nodes of about 100 entries, so the cap shows
    # only with many more updates than it: 1,000 updates with a cap of 10.
    capped = JobStore(store.redis, history_length=10)
    job_id = capped.create("sleep", {})["job_id"]
    for n in range(1, 1001):
        capped.update(job_id, state=PROGRESS, current=n, total=1000)
    kept = [s["seq"] for s in capped.history(job_id)]
    assert 10 <= len(kept) <= 10 + 200, len(kept)
    assert kept == list(range(1000 - len(kept) + 1, 1001))  # the newest ones, none missing


def test_with_the_default_settings_a_job_keeps_its_newest_thousand_events_for_replay(store):
    # The store users run with (JOB_HISTORY_LENGTH unset): a client away for 1,000 events still
    # gets every one of them, and a job that reports for hours does not grow its history for good.
    job_id = store.create("sleep", {})["job_id"]
    for n in range(1, 2501):
        store.update(job_id, state=PROGRESS, current=n, total=2500)
    kept = [s["seq"] for s in store.history(job_id)]
    assert kept[-1000:] == list(range(1501, 2501))
    assert 1000 <= len(kept) <= 1000 + 200, len(kept)
    assert kept == list(range(2500 - len(kept) + 1, 2501))


def test_with_the_default_settings_a_finished_job_is_kept_a_day_and_one_never_run_a_week(store):
    waiting = store.create("sleep", {})["job_id"]
    done = store.create("sleep", {})["job_id"]
    store.update(done, state=STARTED)
    store.update(done, state=SUCCESS, result={"ok": True})
    day, week = 24 * 3600, 7 * 24 * 3600
    for key in (f"notifier:job:{waiting}", f"notifier:history:{waiting}"):
        assert week - 60 <= store.redis.ttl(key) <= week, key
    for key in (f"notifier:job:{done}", f"notifier:history:{done}"):
        assert day - 60 <= store.redis.ttl(key) <= day, key
