"""The worker side: a real task run by pytest-celery's in-process worker, watched over Socket.IO.

The web process is the real gunicorn (eventlet) on the same Redis database as the in-process
worker, so what arrives at the client went worker -> reporter -> message queue -> namespace.
"""

import os

import pytest
import redis

from clients import Watcher, submit
from notifier.settings import SOCKETIO_CHANNEL
from processes import process_env, wait_for


@pytest.fixture
def web(processes):
    return processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1))


@pytest.fixture
def watcher(web):
    client = Watcher(web.url).connect()
    yield client
    client.close()


def test_a_tasks_progress_reaches_a_socketio_client(celery_worker, web, watcher):
    # One step per 100 ms, the default PROGRESS_MIN_INTERVAL: no step may be coalesced away.
    job = submit(web.url, "sleep", steps=5, interval=0.1)
    ack = watcher.subscribe(job["job_id"], last_seq=0)
    assert ack["ok"] and ack["job"]["job_id"] == job["job_id"]
    final = watcher.wait_finished(job["job_id"])
    assert final["state"] == "SUCCESS" and final["result"] == {"steps": 5}
    assert final["percent"] == 100.0 and final["current"] == final["total"] == 5
    messages = list({d["seq"]: d["message"] for _, d in watcher.job_events(job["job_id"])}.values())
    assert [m for m in messages if m.startswith("step")] == [f"step {n} of 5" for n in range(1, 6)]
    # Missed events first, then live ones: every seq once, in order.
    assert watcher.seqs(job["job_id"]) == list(range(1, final["seq"] + 1))


def test_a_failing_task_finishes_with_its_error(celery_worker, web, watcher):
    job = submit(web.url, "sleep", steps=4, interval=0.01, fail_at=2)
    watcher.subscribe(job["job_id"], last_seq=0)
    final = watcher.wait_finished(job["job_id"])
    assert final["state"] == "FAILURE"
    assert final["error"] == "StepFailed: failed at step 2, as asked"
    assert final["current"] == 1  # step 2 never completed


def test_primes_reports_each_segment_and_its_count(celery_worker, web, watcher):
    job = submit(web.url, "primes", limit=2_500_000)
    watcher.subscribe(job["job_id"], last_seq=0)
    final = watcher.wait_finished(job["job_id"], timeout=60)
    assert final["state"] == "SUCCESS" and final["result"] == {"count": 183072}
    events = {d["seq"]: d for _, d in watcher.job_events(job["job_id"])}
    progress = [d for _, d in sorted(events.items()) if d["state"] == "PROGRESS"]
    # Segments closer together than PROGRESS_MIN_INTERVAL are coalesced; the last one never is.
    currents = [d["current"] for d in progress]
    assert currents == sorted(set(currents)) and currents[-1] == progress[-1]["total"] == 3


def test_the_worker_keeps_one_store_and_one_emitter_per_process(celery_worker, web, watcher):
    from notifier.reporter import worker_emitter, worker_runtime

    for _ in range(2):
        job = submit(web.url, "sleep", steps=1, interval=0)
        watcher.subscribe(job["job_id"], last_seq=0)  # replays `finished` if it came first
        watcher.wait_finished(job["job_id"])
    for made_once in (worker_runtime, worker_emitter):
        assert made_once.cache_info().currsize == 1 and made_once.cache_info().misses == 1


def test_only_python_socketio_itself_publishes_on_flask_socketios_channel(celery_worker, web,
                                                                          watcher, settings):
    """Every message of a job on the message queue is one the worker's write-only
    ``SocketIO(message_queue=...)`` made: python-socketio's own format, from its own emitter."""
    from notifier.reporter import worker_emitter

    pubsub = redis.Redis.from_url(settings.message_queue).pubsub()
    pubsub.subscribe(SOCKETIO_CHANNEL)
    try:
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # listening from here on
        job = submit(web.url, "sleep", steps=3, interval=0.1)
        job_id = job["job_id"]
        assert watcher.subscribe(job_id, last_seq=0)["ok"]
        final = watcher.wait_finished(job_id)
        raw = []

        def room_closed():
            while (message := pubsub.get_message(timeout=0.1)) is not None:
                raw.append(message["data"])
            return any(b'"close_room"' in data and job_id.encode() in data for data in raw)

        wait_for(room_closed, 10, 0, message="the job's room to be closed on the channel")
    finally:
        pubsub.close()
    manager = worker_emitter().server.manager  # python-socketio's own manager, as the worker made it
    messages = [manager.json.loads(data) for data in raw]
    assert {m["host_id"] for m in messages} == {manager.host_id}
    emits = [(m["event"], m["data"][0]["seq"]) for m in messages if m["method"] == "emit"]
    assert emits == [("progress", seq) for seq in range(1, final["seq"])] + [("finished", final["seq"])]
    assert [(m["method"], m["room"]) for m in messages if m["method"] != "emit"] == [("close_room", job_id)]
