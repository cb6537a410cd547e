"""The relay overrides python-socketio internals: fail loudly if one of them changes shape."""

import inspect
import json
import os
import time

import pytest
import socketio as python_socketio

from notifier.flask import listeners, relay

BASES = {"redis": python_socketio.RedisManager, "kombu": python_socketio.KombuManager}


@pytest.mark.parametrize("transport, name", [
    *[(transport, name) for transport in BASES for name in relay.OVERRIDDEN],
    *[(transport, name) for transport, names in listeners.OVERRIDDEN.items() for name in names],
])
def test_every_overridden_internal_still_exists_with_the_same_signature(transport, name):
    ours = {"redis": listeners.ResyncingRedisManager, "kombu": listeners.ResyncingKombuManager}[transport]
    base = getattr(BASES[transport], name, None)
    assert base is not None, f"python-socketio's {BASES[transport].__name__} has no {name} any more"
    assert getattr(ours, name) is not base, f"{ours.__name__}.{name} no longer overrides it"
    assert inspect.signature(getattr(ours, name)) == inspect.signature(base), \
        f"{name} changed shape in python-socketio: read the new one before pinning a newer release"


def test_the_overridden_names_are_all_the_methods_the_relay_redefines():
    redefined = {name for cls in (relay.OrderedRelay, listeners.ResyncingRedisManager,
                                  listeners.ResyncingKombuManager)
                 for name in vars(cls) if name.startswith(("_", "basic_")) and not name.startswith("__")
                 and any(hasattr(base, name) for base in BASES.values())}
    named = set(relay.OVERRIDDEN) | {n for names in listeners.OVERRIDDEN.values() for n in names}
    assert redefined == named


# ---- the subscribe protocol, with the races forced ------------------------------------------------
# A real python-socketio Server and the real relay; what would go to a socket is recorded instead,
# and the message queue is left out (stand-ins for the network, named as such). The events a
# worker publishes while a client subscribes are delivered from inside ``read``, the moment the
# race needs them, so every ordering is produced every time.

class LocalRelay(relay.OrderedRelay, python_socketio.PubSubManager):
    def _publish(self, data):  # no message queue: what this process emits is handled locally
        pass


@pytest.fixture
def server():
    server = python_socketio.Server(client_manager=LocalRelay(store=None), async_mode="threading")
    server.sent = []  # (eio sid, [event, snapshot]) as they would go out
    server._send_eio_packet = lambda eio_sid, eio_pkt: server.sent.append(
        (eio_sid, json.loads(eio_pkt.data[eio_pkt.data.index("["):])))
    return server


def connected(server, eio_sid):
    return server.manager.connect(eio_sid, "/jobs")


def job_event(seq, final=False):
    snapshot = {"job_id": "job", "seq": seq, "finished_at": 1.0 if final else None}
    return {"method": "emit", "event": "finished" if final else "progress", "data": [snapshot],
            "namespace": "/jobs", "room": "job", "host_id": "worker"}


def received(server, eio_sid):
    return [(data[0], data[1]["seq"]) for sid, data in server.sent if sid == eio_sid]


def test_a_job_that_finishes_while_a_client_subscribes_still_sends_it_finished(server):
    sid = connected(server, "eio-1")
    manager = server.manager

    def read(last_seq):
        manager._handle_emit(job_event(3))
        manager._handle_emit(job_event(4, final=True))
        manager._handle_close_room({"room": "job", "namespace": "/jobs"})
        return {"job_id": "job", "seq": 2, "finished_at": None}, []  # read before the worker's writes

    manager.join_with_replay(sid, "job", 2, read)
    assert received(server, "eio-1") == [("progress", 3), ("finished", 4)]
    assert manager.tracked() == 0 and manager.job_rooms() == []


def test_live_events_at_or_below_what_a_client_has_are_not_sent_again(server):
    sid = connected(server, "eio-1")
    manager = server.manager
    history = [{"job_id": "job", "seq": seq, "finished_at": None} for seq in (1, 2, 3)]

    def read(last_seq):
        manager._handle_emit(job_event(3))  # the store is ahead of the queue: 3 is written ...
        return history[-1], history[last_seq:]

    manager.join_with_replay(sid, "job", 0, read)
    manager._handle_emit(job_event(3))  # ... and arrives again from the queue afterwards
    manager._handle_emit(job_event(4))
    assert received(server, "eio-1") == [("progress", 1), ("progress", 2), ("progress", 3),
                                         ("progress", 4)]
    server.manager.disconnect(sid, "/jobs")
    assert manager.tracked() == 0


def test_only_events_passed_on_to_a_room_here_are_counted_as_relayed(server):
    manager = server.manager
    manager._handle_emit(job_event(1))  # nobody here watches "job"
    assert manager.relayed == {"progress": 0, "finished": 0}
    sid = connected(server, "eio-1")
    manager.join_with_replay(sid, "job", None, lambda last_seq: ({"seq": 1, "finished_at": None}, []))
    manager._handle_emit(job_event(2))
    manager._handle_emit(job_event(3, final=True))
    assert manager.relayed == {"progress": 1, "finished": 1}
    assert received(server, "eio-1") == [("progress", 2), ("finished", 3)]


# ---- the heartbeat shares the sockets: job events do not wait for all of it ----------------------

@pytest.fixture
def beating(server, monkeypatch):
    """The real heartbeat code sending through ``server``, in slices of 2. Where it yields, the
    count of yields is recorded and ``server.meanwhile`` runs: what other work does then."""
    from flask_socketio import SocketIO

    from notifier.flask import heartbeat

    def yield_turn(seconds):
        server.yields += 1
        server.meanwhile(server.yields)

    server.yields, server.meanwhile = 0, lambda count: None
    monkeypatch.setattr(heartbeat, "HEARTBEAT_SLICE", 2)
    socketio = SocketIO()
    socketio.server, socketio.sleep = server, yield_turn

    class Beating:
        """The heartbeat's functions, bound to this ``socketio``."""

        def beat(self, store):
            return heartbeat.beat(socketio, store)

        def _beat(self, store, settings):
            return heartbeat._beat(socketio, store, settings)

    beating = Beating()
    beating.socketio = socketio
    return beating


def test_a_job_event_goes_out_between_heartbeat_slices_not_after_all_of_them(server, beating, store):
    sids = [connected(server, f"eio-{n}") for n in range(1, 6)]
    server.manager.enter_room(sids[4], "/jobs", "job")
    server.meanwhile = lambda count: server.manager._handle_emit(job_event(count))
    before = time.time()
    beating.beat(store)
    after = time.time()
    sent = [(eio_sid, data[0]) for eio_sid, data in server.sent]
    assert sent == [("eio-1", "heartbeat"), ("eio-2", "heartbeat"), ("eio-5", "progress"),
                    ("eio-3", "heartbeat"), ("eio-4", "heartbeat"), ("eio-5", "progress"),
                    ("eio-5", "heartbeat"), ("eio-5", "progress")]
    beat = server.sent[0][1][1]
    assert beat["active_jobs"] == 0 and beat["server"]
    assert before <= beat["ts"] <= after  # the server's wall clock: pages learn its offset from it


def test_each_connected_client_gets_one_heartbeat_and_a_client_that_left_none(server, beating, store):
    sids = [connected(server, f"eio-{n}") for n in range(1, 6)]
    server.manager.disconnect(sids[1], "/jobs")
    beating.beat(store)
    assert sorted(eio_sid for eio_sid, data in server.sent) == ["eio-1", "eio-3", "eio-4", "eio-5"]
    assert server.yields == 2


def test_a_client_whose_replay_fails_is_let_go_not_held_for_every_later_event(server):
    failing, watching = connected(server, "eio-1"), connected(server, "eio-2")
    manager = server.manager
    manager.join_with_replay(watching, "job", None, lambda last_seq: (job_event(1)["data"][0], []))
    record = server._send_eio_packet

    def send(eio_sid, eio_pkt):  # the failing client's socket breaks during its replay
        if eio_sid == "eio-1":
            raise ConnectionError("the socket broke")
        record(eio_sid, eio_pkt)

    server._send_eio_packet = send
    with pytest.raises(ConnectionError):
        manager.join_with_replay(failing, "job", 0, lambda last_seq: (
            job_event(2)["data"][0], [job_event(1)["data"][0], job_event(2)["data"][0]]))
    server._send_eio_packet = record
    manager._handle_emit(job_event(3))
    assert received(server, "eio-2") == [("progress", 3)]
    assert failing not in manager.rooms["/jobs"]["job"]
    assert manager.tracked() == 1  # the open room only: nothing is held for the client that failed

    # Subscribing again works and is answered like a first subscribe.
    manager.join_with_replay(failing, "job", 2, lambda last_seq: (job_event(3)["data"][0],
                                                                   [job_event(3)["data"][0]]))
    manager._handle_emit(job_event(4))
    assert received(server, "eio-1") == [("progress", 3), ("progress", 4)]


class Stop(BaseException):
    """Ends the heartbeat loop under test (an Exception would be caught by the loop)."""


def test_the_heartbeat_goes_on_after_one_beat_fails(server, beating, store, monkeypatch):
    connected(server, "eio-1")
    counts = iter([RuntimeError("a bad moment"), 4, 5])

    def running_count():  # the real store's count, but the first read fails (a stand-in)
        value = next(counts)
        if isinstance(value, Exception):
            raise value
        return value

    def yield_turn(seconds):
        if sum(1 for _, data in server.sent if data[0] == "heartbeat") == 2:
            raise Stop
    monkeypatch.setattr(store, "running_count", running_count)
    monkeypatch.setattr(beating.socketio, "sleep", yield_turn)
    settings = type("Settings", (), {"heartbeat_interval": 1})
    with pytest.raises(Stop):
        beating._beat(store, settings)
    assert [data[1]["active_jobs"] for _, data in server.sent] == [4, 5]


def test_the_heartbeat_repeats_the_last_active_jobs_count_while_redis_is_down(server, beating, store,
                                                                             monkeypatch):
    import redis

    from processes import free_port

    connected(server, "eio-1")
    store.redis.zadd(store._running_key, {"job": 1})
    up, down = store.redis, redis.Redis(port=free_port(), socket_connect_timeout=0.5)

    def yield_turn(seconds):  # Redis is down for the first beat, up for the second, then down
        beats = sum(1 for _, data in server.sent if data[0] == "heartbeat")
        if beats == 3:
            raise Stop
        store.redis = up if beats == 1 else down
    monkeypatch.setattr(beating.socketio, "sleep", yield_turn)
    with pytest.raises(Stop):
        beating._beat(store, type("Settings", (), {"heartbeat_interval": 1}))
    store.redis = up
    beats = [data[1] for _, data in server.sent]
    assert "active_jobs" not in beats[0]  # nothing read yet: left out, never null
    assert [beat.get("active_jobs") for beat in beats[1:]] == [1, 1]


# ---- the stalled-job check: only the holder of its lock declares jobs LOST ------------------------

def test_the_stall_check_declares_nothing_while_another_process_holds_its_lock(store, settings):
    """The real check loop on the real Redis, its rounds counted where it sleeps; another web
    process is stood in for by the lock it holds."""
    from dataclasses import replace

    from flask_socketio import SocketIO

    from notifier.flask import stall_check
    from processes import wait_for

    settings = replace(settings, stall_timeout=0.2)
    job_id = store.create("sleep", {})["job_id"]
    store.update(job_id, state="STARTED")
    wait_for(lambda: job_id in store.stalled(settings.stall_timeout), 10, message="the job to stall")
    socketio = SocketIO(message_queue=os.environ["REDIS_URL"], async_mode="threading")

    def run_rounds(count):
        rounds = []

        def sleep(seconds):
            if len(rounds) == count:
                raise Stop
            rounds.append(seconds)
        socketio.sleep = sleep
        with pytest.raises(Stop):
            stall_check._check_stalled(socketio, store, settings)

    assert store.try_lock("stall-check", "another web process", 60)
    run_rounds(5)
    assert store.get(job_id)["state"] == "STARTED"
    store.redis.delete(f"{store.prefix}lock:stall-check")  # the other process is gone
    run_rounds(2)
    assert store.get(job_id)["state"] == "LOST"


# ---- the first listen: the listener starts with the first client ----------------------------------

def test_events_published_before_the_first_listen_reach_a_client_that_subscribed_before_it(store):
    """A real Redis, a real write-only emitter and the real Redis listener, whose first connection
    is held until the test lets it go: the client subscribes and three events are published while
    nobody listens, every time. Once listening, the listener sends the room what it missed."""
    import os
    import threading

    from flask_socketio import SocketIO

    from notifier import events
    from processes import wait_for

    manager = listeners.relay_manager(os.environ["REDIS_URL"], store)
    server = python_socketio.Server(client_manager=manager, async_mode="threading")
    sent = []
    server._send_eio_packet = lambda eio_sid, eio_pkt: sent.append(
        (eio_sid, json.loads(eio_pkt.data[eio_pkt.data.index("["):])))
    listen, first_connect = threading.Event(), manager._redis_connect

    def held_connect():
        listen.wait(30)
        first_connect()

    manager._redis_connect = held_connect
    job_id = store.create("sleep", {})["job_id"]
    sid = manager.connect("client", "/jobs")
    manager.initialize()  # what python-socketio does on its first connection: the listener starts
    manager.join_with_replay(sid, job_id, None, lambda last_seq: (store.get(job_id), []))
    emitter = SocketIO(message_queue=os.environ["REDIS_URL"], async_mode="threading")
    for n in (1, 2, 3):
        events.record(store, emitter, job_id, state="PROGRESS", current=n, total=3)
    listen.set()
    wait_for(lambda: [data[1]["seq"] for eio_sid, data in sent if eio_sid == "client"] == [1, 2, 3],
             10, message="the three events published before the listener listened")


def test_what_the_first_resync_sent_is_not_sent_again_when_the_queue_brings_it_too(store):
    """The listener subscribes to the channel, then resyncs from the job store: events published
    in between are in both. Held there every time (three events published after the listener
    subscribed and before it reads the store); the client gets each once, in order."""
    import os
    import threading

    from flask_socketio import SocketIO

    from notifier import events
    from processes import wait_for

    manager = listeners.relay_manager(os.environ["REDIS_URL"], store)
    server = python_socketio.Server(client_manager=manager, async_mode="threading")
    sent = []
    server._send_eio_packet = lambda eio_sid, eio_pkt: sent.append(
        (eio_sid, json.loads(eio_pkt.data[eio_pkt.data.index("["):])))
    subscribed, published, resynced = threading.Event(), threading.Event(), threading.Event()
    first_resync = manager.resync

    def held_resync():
        subscribed.set()
        published.wait(30)
        manager.resync = first_resync
        try:
            return first_resync()
        finally:
            resynced.set()

    manager.resync = held_resync
    job_id = store.create("sleep", {})["job_id"]
    sid = manager.connect("client", "/jobs")
    manager.join_with_replay(sid, job_id, None, lambda last_seq: (store.get(job_id), []))
    manager.initialize()
    assert subscribed.wait(10), "the listener never subscribed"
    emitter = SocketIO(message_queue=os.environ["REDIS_URL"], async_mode="threading")
    for n in (1, 2, 3):
        events.record(store, emitter, job_id, state="PROGRESS", current=n, total=4)
    published.set()
    assert resynced.wait(10), "the listener never resynced"
    # Published after the resync: it arrives behind whatever the queue held from before.
    events.record(store, emitter, job_id, state="PROGRESS", current=4, total=4)
    seqs = lambda: [data[1]["seq"] for eio_sid, data in sent if eio_sid == "client"]  # noqa: E731
    wait_for(lambda: 4 in seqs(), 10, message="the event published after the resync")
    assert seqs() == [1, 2, 3, 4]
