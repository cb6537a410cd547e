"""RabbitMQ as broker and as Socket.IO message queue, with the real processes.

Skipped when no RabbitMQ answers on 127.0.0.1:5672, unless REQUIRE_RABBITMQ is set (as in CI).
"""

import os
import socket

import pytest

from clients import Watcher, submit
from processes import process_env

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
