"""How job events reach this process's clients: counted, kept in order, and whole across outages.

Every manager here counts the job events it relays (``/metrics``) and can hold one client's live
events of a job while that client's replay is sent, so a client that subscribes with ``last_seq``
gets the missed events first and the live ones after, each once, in ``seq`` order.

python-socketio's Redis listener re-subscribes after an outage with a back-off that grows to a
minute, and whatever the workers published before it is subscribed again never reaches this
process: a client that stayed connected would miss events, even ``finished``. The Redis manager
here retries every second and, once subscribed again, replays from the job store what each job
room here missed since the last event it relayed (clients drop duplicates by ``seq``).
"""

import logging
import threading
import time

import socketio as python_socketio

from notifier.events import FINISHED, NAMESPACE, PROGRESS, event_for
from notifier.store import FINAL_STATES

from .metrics import EVENTS_RELAYED, job_rooms

log = logging.getLogger(__name__)
RETRY_INTERVAL = 1.0


def _snapshot_of(message):
    data = message.get("data")
    return data[0] if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict) else None


class OrderedRelay:
    """Mixin for a python-socketio pub/sub manager: counts job events, and makes a subscriber
    that replays (``join_held`` ... ``release``) get each seq once, in order.

    While the replay goes out, the subscriber's live events of that job are held back. After it,
    the subscriber has a floor: live events at or below the seq it already has are not sent (the
    job store can be ahead of the message queue, so they may still be on their way). The first
    live event above the floor removes it.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._gate = threading.Lock()  # green under eventlet's or gevent's monkey patching
        self._held = {}  # job room -> {sid: [(event, snapshot), ...]} held back from that sid
        self._floor = {}  # job room -> {sid: highest seq that sid already has}

    def _handle_emit(self, message):
        snapshot = _snapshot_of(message)
        if (message.get("namespace") != NAMESPACE or message.get("event") not in (PROGRESS, FINISHED)
                or snapshot is None):
            return super()._handle_emit(message)
        EVENTS_RELAYED.labels(event=message["event"]).inc()
        room, seq = message.get("room"), snapshot.get("seq", -1)
        with self._gate:  # deciding who is skipped and delivering to the rest is one step
            skip = set()
            for sid, buffer in self._held.get(room, {}).items():
                buffer.append((message["event"], snapshot))
                skip.add(sid)
            floors = self._floor.pop(room, {})
            for sid, floor in floors.items():
                if seq <= floor:
                    skip.add(sid)
            floors = {sid: floor for sid, floor in floors.items() if seq <= floor}
            if floors and message["event"] != FINISHED:
                self._floor[room] = floors
            if skip:
                given = message.get("skip_sid") or []
                given = [given] if isinstance(given, str) else list(given)
                message = {**message, "skip_sid": given + sorted(skip)}
            return super()._handle_emit(message)

    def join_held(self, sid, namespace, room):
        """Put ``sid`` in ``room`` with its live events held back until ``release``."""
        with self._gate:
            self._held.setdefault(room, {})[sid] = []
            self.enter_room(sid, namespace, room)

    def release(self, sid, room, send=None, after_seq=None):
        """Pass on, through ``send(event, snapshot)``, the held events newer than ``after_seq``,
        then let live events newer than what ``sid`` has through again."""
        while True:
            with self._gate:
                held = self._held.get(room, {})
                buffer = held.get(sid, [])
                if not buffer:
                    held.pop(sid, None)
                    if not held:
                        self._held.pop(room, None)
                    if send and after_seq is not None:
                        self._floor.setdefault(room, {})[sid] = after_seq
                    return
                held[sid] = []
            for event, snapshot in buffer:  # outside the gate: events arriving now are held
                if send and (after_seq is None or snapshot["seq"] > after_seq):
                    send(event, snapshot)
                    after_seq = snapshot["seq"]


class ResyncingRedisManager(OrderedRelay, python_socketio.RedisManager):
    """The Redis client manager, plus a replay from the job store after each re-subscribe."""

    def __init__(self, url, store, channel="flask-socketio"):
        super().__init__(url, channel=channel)
        self.store = store
        self.relayed = {}  # job room -> seq of the last event this process passed on to it

    def _handle_emit(self, message):
        snapshot, room = _snapshot_of(message), message.get("room")
        if message.get("namespace") == NAMESPACE and snapshot is not None and room:
            if message.get("event") == FINISHED:
                self.relayed.pop(room, None)
            elif isinstance(snapshot.get("seq"), int):
                self.relayed[room] = max(self.relayed.get(room, -1), snapshot["seq"])
        return super()._handle_emit(message)

    def _redis_listen_with_retries(self):  # replaces python-socketio's (back-off up to 60 s)
        subscribed, lost = False, False
        while True:
            try:
                if not subscribed:
                    self._redis_connect()
                    self.pubsub.subscribe(self.channel)
                    subscribed = True
                    if lost:
                        self.resync()
                yield from self.pubsub.listen()
            except Exception as exc:
                log.warning("message queue unreachable (%s); retrying in %g s", exc, RETRY_INTERVAL)
                subscribed, lost = False, True
                time.sleep(RETRY_INTERVAL)  # green too, when eventlet or gevent monkey-patched

    def resync(self):
        """Send each job room here the events published while this process was not listening."""
        rooms = job_rooms(self)
        for room in list(self.relayed):
            if room not in rooms:
                del self.relayed[room]
        replayed = 0
        for room in rooms:
            for snapshot in self.store.history(room, self.relayed.get(room, -1)):
                # The same path as a message from the queue: counted, ordered, tracked above.
                self._handle_emit({"method": "emit", "event": event_for(snapshot), "data": [snapshot],
                                   "namespace": NAMESPACE, "room": room, "host_id": self.host_id})
                replayed += 1
                if snapshot["state"] in FINAL_STATES:
                    self._handle_close_room({"room": room, "namespace": NAMESPACE})
                    break
        log.warning("message queue back: replayed %d events to %d job rooms", replayed, len(rooms))


class OrderedKombuManager(OrderedRelay, python_socketio.KombuManager):
    """The manager for RabbitMQ (or any other Kombu transport)."""


def relay_manager(url, store, channel="flask-socketio"):
    """The client manager Flask-SocketIO would pick for ``url`` (same channel), made an
    OrderedRelay; for Redis, one that also replays what its rooms missed during an outage."""
    if url.startswith(("redis://", "rediss://")):
        return ResyncingRedisManager(url, store, channel=channel)
    return OrderedKombuManager(url, channel=channel)
