"""The ``heartbeat``: every ``HEARTBEAT_INTERVAL`` seconds, each web process tells each of its own
clients that it is alive, with the number of running jobs.

Each web process runs one heartbeat loop, started with ``socketio.start_background_task`` once it
serves. The heartbeat goes out in slices of ``HEARTBEAT_SLICE`` clients, yielding between them:
one namespace-wide emit to 10k sockets would queue every job event behind 10k sends (over a second
on one core), while a slice holds them up for a few milliseconds at most.
"""

import logging
import os
import socket
import time

import redis

from notifier import events

log = logging.getLogger(__name__)

HEARTBEAT_SLICE = 150  # clients sent one heartbeat before job events get their turn
HEARTBEAT_PAUSE = 0.002  # seconds between slices: job events and replays go first


def _beat(socketio, store, settings):
    known = {}  # what the last beat could read, repeated while Redis cannot be read
    while True:
        socketio.sleep(settings.heartbeat_interval)
        try:
            beat(socketio, store, known)
        except Exception:  # one failed beat must not end the heartbeat for good
            log.exception("heartbeat failed; the next one is due in %g s", settings.heartbeat_interval)


def beat(socketio, store, known=None):
    """Send one heartbeat to each of this process's clients, a slice at a time.

    ``known`` carries ``active_jobs`` from one beat to the next: while Redis cannot be read the
    last count is repeated (never a null), and before any count was read the field is left out.
    """
    known = {} if known is None else known
    try:
        known["active_jobs"] = store.running_count()
    except redis.RedisError as exc:
        log.warning("heartbeat could not reach Redis: %s", exc)
    # Each process beats for its own clients only, so it keeps beating through a Redis outage.
    payload = {"ts": time.time(), "server": server_id(), **known}
    for clients in _slices(_connected(socketio), HEARTBEAT_SLICE):
        socketio.emit(events.HEARTBEAT, payload, namespace=events.NAMESPACE, to=clients,
                      ignore_queue=True)
        socketio.sleep(HEARTBEAT_PAUSE)


def server_id():
    """This web process's name (host and pid; a forked process gets its own)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _connected(socketio):
    """The sids of this process's clients on the namespace (each is a room of its own)."""
    return [sid for sid, _ in socketio.server.manager.get_participants(events.NAMESPACE, None)]


def _slices(items, size):
    return (items[start:start + size] for start in range(0, len(items), size))


def start(socketio, store, settings):
    """Start this process's heartbeat loop; None when it is switched off (interval 0)."""
    if settings.heartbeat_interval <= 0:
        return None
    return socketio.start_background_task(_beat, socketio, store, settings)
