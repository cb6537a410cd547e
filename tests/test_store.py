"""The job store against a real Redis: seq numbering, final states, history, cancel flags."""

import pytest

from notifier.store import (FAILURE, LOST, PENDING, PROGRESS, REVOKED, STARTED, SUCCESS,
                            JobNotFound, JobRefused, is_job_id)


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


def test_a_final_job_refuses_any_later_change(store):
    job_id = store.create("sleep", {})["job_id"]
    final = store.update(job_id, state=SUCCESS, result={"ok": 1})
    assert final["finished_at"] is not None and final["percent"] == 100.0
    with pytest.raises(JobRefused) as refused:
        store.update(job_id, state=PROGRESS, current=1)
    assert refused.value.state == SUCCESS
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


def test_cancel_request_says_whether_the_job_had_started(store):
    queued = store.create("sleep", {})["job_id"]
    running = store.create("sleep", {})["job_id"]
    store.update(running, state=STARTED)
    done = store.create("sleep", {})["job_id"]
    store.update(done, state=FAILURE, error="boom")
    assert store.request_cancel(queued) == "pending"
    assert store.request_cancel(running) == "running"
    assert store.get_field(running, "cancel_requested") is True
    with pytest.raises(JobRefused):
        store.request_cancel(done)


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
