"""Clients that read slowly or not at all: what they get once they read again, and what the web
process keeps for them meanwhile. Each test stalls a real websocket client with a small receive
buffer until the server's socket buffer toward it is full, under every server the suite runs."""

import json
import os
import threading
import time
import uuid
from dataclasses import replace

import pytest
import websocket

from clients import Watcher, metric, raw_websocket
from processes import process_env, tcp_connections, wait_for
from notifier import events
from notifier.store import JobStore

pytestmark = pytest.mark.web_servers("eventlet", "gevent", "threading")

MESSAGE = "m" * 900  # about 1 KB per event on the wire


def _connect_stalling(url):
    """A raw Engine.IO websocket on /jobs whose socket takes in at most a few KB unread."""
    ws = raw_websocket(url, receive_buffer=4096, timeout=10)
    ws.send("40/jobs,")
    assert ws.recv().startswith("40/jobs,{")
    return ws


def _tcp(server_port, client_port):
    """(state, bytes the server has queued toward the client) of the server's end of a
    connection; None once the server has let go of it."""
    for remote, state, queued in tcp_connections(server_port):
        if remote == client_port:
            return state, queued
    return None


def _wait_until_the_server_buffer_is_full(web, ws):
    """Wait until the server has filled its socket buffer toward ``ws`` and sends no more: its
    queue is not empty and has not changed for a second."""
    client_port, seen = ws.sock.getsockname()[1], []

    def settled():
        state = _tcp(web.port, client_port)
        seen.append(state[1] if state else 0)
        return seen[-1] > 0 and len(seen) >= 10 and len(set(seen[-10:])) == 1

    wait_for(settled, 60, 0.1, message="the server's buffer toward the stalled client to fill")


def _read_until(ws, done, timeout=60):
    """Read frames (answering Engine.IO pings) until ``done(packets)``; every frame must be a whole,
    well-formed packet."""
    packets, deadline = [], time.monotonic() + timeout
    while not done(packets):
        assert time.monotonic() < deadline, f"only {len(packets)} packets arrived"
        text = ws.recv()
        if text == "2":
            ws.send("3")
        elif text.startswith(("42/jobs,", "43/jobs,")):
            body = text[len("42/jobs,"):].lstrip("0123456789")
            packets.append((text[:2], json.loads(body)))
    return packets


def test_a_reader_that_stalls_gets_every_frame_whole_once_it_reads_again(processes, store, settings):
    """Two replays of 2,400 events (about 5 MB) to a client that reads nothing until the server's
    socket buffer toward it is full: once it reads, every frame is whole and every seq there."""
    history = 3000
    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1, JOB_HISTORY_LENGTH=history))
    keeping_all = JobStore.from_settings(replace(settings, history_length=history))
    jobs = []
    for _ in range(2):
        job_id = keeping_all.create("sleep", {})["job_id"]
        for step in range(1, 2401):
            keeping_all.update(job_id, state="PROGRESS", current=step, total=2400, message=MESSAGE)
        jobs.append(job_id)

    ws = _connect_stalling(web.url)
    try:
        for n, job_id in enumerate(jobs):
            ws.send('42/jobs,%d["subscribe",{"job_id":"%s","last_seq":-1}]' % (n, job_id))
        _wait_until_the_server_buffer_is_full(web, ws)
        packets = _read_until(ws, lambda packets: sum(kind == "43" for kind, _ in packets) == 2)
    finally:
        ws.close()
    acks = [body[0] for kind, body in packets if kind == "43"]
    assert all(ack["ok"] for ack in acks), acks
    for job_id in jobs:
        seqs = [body[1]["seq"] for kind, body in packets if kind == "42" and body[1].get("job_id") == job_id]
        assert seqs == list(range(2401)), f"{len(seqs)} events of {job_id}, not seq 0..2400 in order"


def test_a_client_that_stops_reading_is_dropped_and_its_socket_let_go(processes, store, settings):
    """A client that answers pings but reads nothing while its job's events pour in: the web process
    drops it once it has 4 histories' worth of packets waiting (400 here), lets go of its socket
    within the websocket timeout (ping interval + ping timeout), and a watcher that reads gets
    every event."""
    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1, JOB_HISTORY_LENGTH=100,
                                    SOCKETIO_PING_INTERVAL=3, SOCKETIO_PING_TIMEOUT=3))
    job_id = store.create("sleep", {})["job_id"]
    store.update(job_id, state="STARTED", message="started")
    reader = Watcher(web.url).connect()
    assert reader.subscribe(job_id)["ok"]
    stalled = _connect_stalling(web.url)
    stalled.send('42/jobs,0["subscribe",{"job_id":"%s"}]' % job_id)
    assert stalled.recv().startswith("43/jobs,0[")
    client_port = stalled.sock.getsockname()[1]
    ponging = threading.Event()

    def pong_blindly():  # keeps the connection alive without reading a byte
        while not ponging.wait(0.5):
            try:
                stalled.send("3")
            except (websocket.WebSocketException, OSError):
                return

    threading.Thread(target=pong_blindly, daemon=True).start()
    from flask_socketio import SocketIO

    emitter = SocketIO(message_queue=settings.message_queue, async_mode="threading")
    sent = 0
    try:
        # Batches of 20, each read by the reader before the next goes out: a client that reads
        # keeps up, and only the stalled one's backlog grows past 400.
        while metric(web.url, "notifier_slow_clients_dropped_total") == 0:
            assert sent < 20_000, "20,000 events (about 20 MB) went to a client that reads none"
            for _ in range(20):
                sent += 1
                last = events.record(store, emitter, job_id, state="PROGRESS", current=sent,
                                     message=MESSAGE)["seq"]
            wait_for(lambda: reader.seqs_after(job_id, 1)[-1:] == [last], 30, 0.005,
                     message="the reader to get the batch")
        assert reader.seqs_after(job_id, 1) == list(range(2, last + 1))
        wait_for(lambda: metric(web.url, "notifier_clients_connected") == 1, 10,
                 message="the stalled client to be gone from /jobs")
        wait_for(lambda: (_tcp(web.port, client_port) or ("gone",))[0] != "01", 3 + 3 + 10,
                 message="the web process to let go of the stalled client's socket")
    finally:
        ponging.set()
        reader.close()
        stalled.close()
    assert "reads too slowly" in web.output()


def test_a_websocket_the_server_closed_ends_though_its_client_goes_on_sending(processes):
    """A client that never answers a ping but keeps sending messages: Engine.IO closes its
    session after ping interval + ping timeout, and its connection must end too."""
    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1,
                                    SOCKETIO_PING_INTERVAL=2, SOCKETIO_PING_TIMEOUT=2))
    talker = _connect_stalling(web.url)
    client_port, talking = talker.sock.getsockname()[1], threading.Event()

    def talk():  # a message every half second, and never a pong
        while not talking.wait(0.5):
            try:
                talker.send('42/jobs,["unsubscribe",{"job_id":"%s"}]' % uuid.uuid4())
            except (websocket.WebSocketException, OSError):
                return

    threading.Thread(target=talk, daemon=True).start()
    try:
        wait_for(lambda: metric(web.url, "notifier_clients_connected") == 0, 2 + 2 + 10,
                 message="the server to close the session of a client that does not pong")
        wait_for(lambda: (_tcp(web.port, client_port) or ("gone",))[0] != "01", 10,
                 message="the web process to end that client's connection")
    finally:
        talking.set()
        talker.close()
