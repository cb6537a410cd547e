"""End to end with the real processes: gunicorn + `celery -A tasks worker` + Redis, followed by real
python-socketio clients over websocket and long-polling; once with gunicorn's eventlet worker serving
the web process, once with its gevent worker."""

import pytest
import requests

from clients import Watcher, metric, submit
from processes import free_port, process_env, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.web_servers("eventlet", "gevent")]


@pytest.fixture
def watcher(stack):
    client = Watcher(stack.url).connect()
    yield client
    client.close()


def test_a_job_is_followed_live_from_submit_to_finished(stack, watcher):
    job = submit(stack.url, "sleep", steps=8, interval=0.1)
    ack = watcher.subscribe(job["job_id"])
    assert ack["ok"] and ack["job"]["seq"] >= 0
    final = watcher.wait_finished(job["job_id"])
    assert final["state"] == "SUCCESS" and final["finished_at"] >= final["created_at"]
    # Every event after the one the ack carried arrives exactly once, in order, and none before.
    assert watcher.seqs(job["job_id"]) == list(range(ack["job"]["seq"] + 1, final["seq"] + 1))
    assert len(watcher.finished(job["job_id"])) == 1
    beat = wait_for(watcher.heartbeats, 5, message="a heartbeat")[0]
    assert set(beat) == {"ts", "server", "active_jobs"}
    # The room is closed once the job finished, while the client stays connected.
    wait_for(lambda: metric(stack.url, "notifier_rooms_open") == 0, 5, message="room closed")
    assert metric(stack.url, "notifier_clients_connected") >= 1
    assert watcher.sio.connected


def test_rooms_do_not_grow_with_the_number_of_finished_jobs(stack, watcher):
    jobs = [submit(stack.url, "sleep", steps=2, interval=0.05) for _ in range(6)]
    acks = [watcher.subscribe(job["job_id"]) for job in jobs]
    assert all(ack["ok"] for ack in acks)
    for ack in acks:
        # A job that finished before its subscribe is answered with its final snapshot instead.
        if ack["job"]["finished_at"] is None:
            watcher.wait_finished(ack["job"]["job_id"])
    wait_for(lambda: metric(stack.url, "notifier_rooms_open") == 0, 5, message="rooms closed")


def test_a_late_joiner_gets_the_final_snapshot_at_once_and_can_replay_everything(stack, watcher):
    job = submit(stack.url, "sleep", steps=3, interval=0.01)
    wait_for(lambda: requests.get(f"{stack.url}/api/jobs/{job['job_id']}").json()["state"] == "SUCCESS",
             15, message="job done")
    late = Watcher(stack.url).connect()
    try:
        ack = late.subscribe(job["job_id"], last_seq=-1)
        assert ack["ok"] and ack["job"]["state"] == "SUCCESS"
        wait_for(lambda: late.seqs(job["job_id"]) == list(range(0, ack["job"]["seq"] + 1)), 5,
                 message="full replay")
        assert late.finished(job["job_id"])[0] == ack["job"]
        assert metric(stack.url, "notifier_rooms_open") == 0
    finally:
        late.close()


def test_clients_get_a_real_websocket_transport(stack):
    # Websocket only: no long-polling to fall back on, so the connection is a websocket or fails.
    direct = Watcher(stack.url, transports=("websocket",)).connect()
    # Like a browser: long-polling first, then the upgrade to a websocket.
    upgraded = Watcher(stack.url, transports=("polling", "websocket")).connect()
    try:
        assert direct.sio.transport() == "websocket"
        wait_for(lambda: upgraded.sio.transport() == "websocket", 10, message="the upgrade")
        job = submit(stack.url, "sleep", steps=3, interval=0.05)
        for client in (direct, upgraded):
            assert client.subscribe(job["job_id"], last_seq=-1)["ok"]
        for client in (direct, upgraded):
            final = client.wait_finished(job["job_id"])
            assert client.unique_seqs(job["job_id"]) == list(range(final["seq"] + 1))
        assert (direct.sio.transport(), upgraded.sio.transport()) == ("websocket", "websocket")
    finally:
        direct.close()
        upgraded.close()


def test_long_polling_clients_follow_jobs_too(stack):
    client = Watcher(stack.url, transports=("polling",)).connect()
    try:
        job = submit(stack.url, "sleep", steps=4, interval=0.05)
        client.subscribe(job["job_id"], last_seq=0)
        final = client.wait_finished(job["job_id"])
        assert client.seqs(job["job_id"]) == list(range(1, final["seq"] + 1))
    finally:
        client.close()


def test_unsubscribe_stops_the_events_of_that_job(stack, watcher):
    slow = submit(stack.url, "sleep", steps=30, interval=0.05)
    other = submit(stack.url, "sleep", steps=30, interval=0.05)
    watcher.subscribe(slow["job_id"])
    watcher.subscribe(other["job_id"])
    wait_for(lambda: watcher.seqs(slow["job_id"]), 10, message="first event")
    assert watcher.call("unsubscribe", {"job_id": slow["job_id"]}) == {"ok": True}
    seen = len(watcher.seqs(slow["job_id"]))
    watcher.wait_finished(other["job_id"], timeout=30)
    wait_for(lambda: requests.get(f"{stack.url}/api/jobs/{slow['job_id']}").json()["state"] == "SUCCESS",
             15, message="slow job done")
    assert len(watcher.seqs(slow["job_id"])) <= seen + 1  # at most one already in flight


@pytest.mark.parametrize("payload, code", [
    ({"job_id": "6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11"}, "not_found"),
    ({"job_id": "../../etc"}, "invalid"),
    ({"job_id": 7}, "invalid"),
    ({}, "invalid"),
    ("6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11", "invalid"),
    ([1, 2, 3], "invalid"),
    (None, "invalid"),
    ({"job_id": "6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11", "last_seq": "5"}, "invalid"),
])
def test_bad_subscribe_payloads_get_an_error_ack_and_keep_the_connection(stack, watcher, payload, code):
    ack = watcher.call("subscribe", payload)
    assert ack["ok"] is False and ack["error"]["code"] == code and ack["error"]["message"]
    assert watcher.call("unsubscribe", "nonsense")["error"]["code"] == "invalid"
    job = submit(stack.url, "sleep", steps=1, interval=0)
    assert watcher.subscribe(job["job_id"])["ok"]  # the same connection still works


@pytest.mark.web_servers("eventlet")  # beside one stack is enough: its own server is threading
def test_the_threading_mode_web_process_serves_the_same_jobs(stack, processes):
    env = process_env(stack.redis_url, HEARTBEAT_INTERVAL=1)
    threaded = processes.web(env, server="threading")
    client = Watcher(threaded.url).connect()
    try:
        job = submit(threaded.url, "sleep", steps=4, interval=0.05)
        client.subscribe(job["job_id"], last_seq=0)
        final = client.wait_finished(job["job_id"])
        assert final["state"] == "SUCCESS"
        # Replay while live events flow (threads, truly concurrent): still each seq once, in order.
        assert client.seqs(job["job_id"]) == list(range(1, final["seq"] + 1))
        wait_for(client.heartbeats, 5, message="a heartbeat in threading mode")
    finally:
        client.close()


@pytest.mark.web_servers("eventlet")  # a web process and worker of its own: nothing else counted
def test_metrics_count_the_events_relayed_by_event(processes):
    redis_port = free_port()
    processes.redis(redis_port)
    env = process_env(f"redis://127.0.0.1:{redis_port}/0", HEARTBEAT_INTERVAL=1)
    web = processes.web(env)
    processes.worker(env)
    client = Watcher(web.url).connect()
    try:
        job = submit(web.url, "sleep", steps=4, interval=0.05)
        assert client.subscribe(job["job_id"])["ok"]
        client.wait_finished(job["job_id"])
        progress = [name for name, _ in client.job_events(job["job_id"])].count("progress")
    finally:
        client.close()
    relayed = lambda event: metric(web.url, f'notifier_events_relayed_total{{event="{event}"}}')  # noqa: E731
    assert relayed("finished") == 1
    assert relayed("progress") >= progress >= 1


def test_one_heartbeat_loop_per_process_whatever_the_number_of_clients(stack):
    clients = [Watcher(stack.url).connect() for _ in range(3)]
    try:
        wait_for(lambda: all(len(c.heartbeats()) >= 3 for c in clients), 10, message="3 beats each")
        for client in clients:
            beats = client.heartbeats()
            assert len({beat["server"] for beat in beats}) == 1
            gaps = [b["ts"] - a["ts"] for a, b in zip(beats, beats[1:])]
            assert all(gap > 0.5 for gap in gaps), gaps  # 1 s apart, not one per client
    finally:
        for client in clients:
            client.close()


def test_subscribing_with_last_seq_mid_job_gives_each_seq_once_in_order(stack):
    """Replay and live events meet at the subscribe: the job store is often ahead of the message
    queue there, so without care a client sees some seq twice or out of order."""
    problems = []
    for _ in range(12):
        client = Watcher(stack.url).connect()
        try:
            job = submit(stack.url, "sleep", steps=4, interval=0.02)
            client.subscribe(job["job_id"], last_seq=0)
            final = client.wait_finished(job["job_id"])
            if client.seqs(job["job_id"]) != list(range(1, final["seq"] + 1)):
                problems.append(client.seqs(job["job_id"]))
        finally:
            client.close()
    assert problems == []
