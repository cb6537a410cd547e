"""The relay overrides python-socketio internals: fail loudly if one of them changes shape."""

import inspect
import json

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
    return lambda store: heartbeat.beat(socketio, store)


def test_a_job_event_goes_out_between_heartbeat_slices_not_after_all_of_them(server, beating, store):
    sids = [connected(server, f"eio-{n}") for n in range(1, 6)]
    server.manager.enter_room(sids[4], "/jobs", "job")
    server.meanwhile = lambda count: server.manager._handle_emit(job_event(count))
    beating(store)
    sent = [(eio_sid, data[0]) for eio_sid, data in server.sent]
    assert sent == [("eio-1", "heartbeat"), ("eio-2", "heartbeat"), ("eio-5", "progress"),
                    ("eio-3", "heartbeat"), ("eio-4", "heartbeat"), ("eio-5", "progress"),
                    ("eio-5", "heartbeat"), ("eio-5", "progress")]
    beat = server.sent[0][1][1]
    assert beat["active_jobs"] == 0 and beat["server"] and beat["ts"] > 0


def test_each_connected_client_gets_one_heartbeat_and_a_client_that_left_none(server, beating, store):
    sids = [connected(server, f"eio-{n}") for n in range(1, 6)]
    server.manager.disconnect(sids[1], "/jobs")
    beating(store)
    assert sorted(eio_sid for eio_sid, data in server.sent) == ["eio-1", "eio-3", "eio-4", "eio-5"]
    assert server.yields == 2
