"""RabbitMQ as broker and as Socket.IO message queue, with the real processes.

Skipped when no RabbitMQ answers on 127.0.0.1:5672, unless REQUIRE_RABBITMQ is set (as in CI).
"""

import os
import shutil
import socket
import subprocess

import pytest

from clients import Watcher, submit
from processes import process_env, wait_for

pytestmark = pytest.mark.e2e
AMQP_URL = os.environ.get("TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")


def rabbitmq_answers():
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def amqp():
    if not rabbitmq_answers():
        if os.environ.get("REQUIRE_RABBITMQ"):
            pytest.fail("RabbitMQ does not answer on 127.0.0.1:5672")
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    return AMQP_URL


def test_jobs_flow_through_rabbitmq_broker_and_message_queue(amqp, processes):
    from conftest import REDIS_BASE

    queue = f"notifier-test-{os.getpid()}"  # a private queue: no other worker takes these jobs
    env = process_env(f"{REDIS_BASE}/3", CELERY_BROKER_URL=amqp, SOCKETIO_MESSAGE_QUEUE=amqp,
                      CELERY_TASK_DEFAULT_QUEUE=queue)
    web = processes.web(env)
    processes.worker(env)
    watcher = Watcher(web.url).connect()
    try:
        job = submit(web.url, "sleep", steps=4, interval=0.05)
        ack = watcher.subscribe(job["job_id"])
        final = watcher.wait_finished(job["job_id"], timeout=30)
        assert final["state"] == "SUCCESS"
        assert watcher.seqs(job["job_id"]) == list(range(ack["job"]["seq"] + 1, final["seq"] + 1))
    finally:
        watcher.close()


def rabbitmqctl(*args):
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_a_rabbitmq_restart_mid_job_is_replayed_to_the_watchers_from_the_job_store(amqp, processes):
    """RabbitMQ restarted: the web process's queue (not durable) and whatever was published while
    it was down are gone. The listener comes back and replays from the job store, as for Redis.

    The job's events come from this test through the job store and a write-only emitter, as a
    worker's do, so that some of them are recorded while nothing can be published (what a worker
    whose publishes failed leaves behind) every time.
    """
    from flask_socketio import SocketIO

    from conftest import REDIS_BASE
    from notifier import events
    from notifier.store import JobStore, connect

    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed to restart RabbitMQ")
    env = process_env(f"{REDIS_BASE}/3", SOCKETIO_MESSAGE_QUEUE=amqp, HEARTBEAT_INTERVAL=1)
    web = processes.web(env)
    store = JobStore(connect(env["REDIS_URL"]))  # the queue is RabbitMQ: the store publishes nothing
    emitter = SocketIO(message_queue=amqp, async_mode="threading")
    job_id = store.create("sleep", {})["job_id"]
    watcher = Watcher(web.url).connect()
    try:
        ack = watcher.subscribe(job_id)
        for n in range(3):
            events.record(store, emitter, job_id, state="PROGRESS", current=n, total=10)
        wait_for(lambda: len(watcher.seqs(job_id)) >= 3, 30, message="live events")
        rabbitmqctl("stop_app")
        try:
            wait_for(lambda: "message queue unreachable" in web.output(), 30,
                     message="the web process to lose its listener")
            for n in range(3, 8):  # recorded, never published
                store.update(job_id, state="PROGRESS", current=n, total=10)
        finally:
            rabbitmqctl("start_app")
        events.record(store, emitter, job_id, state="SUCCESS", result={"ok": True})
        final = watcher.wait_finished(job_id, 60)
        assert final["state"] == "SUCCESS"
        # Each once, in order: what a resync sent from the job store is not relayed again when
        # the new queue brings it too.
        seqs = watcher.seqs(job_id)
        assert seqs == list(range(ack["job"]["seq"] + 1, final["seq"] + 1)), seqs
    finally:
        watcher.close()
