"""Keeps this process's job rooms whole across a Redis outage.

python-socketio's Redis listener re-subscribes after an outage with a back-off that grows to a
minute, and whatever the workers published before it is subscribed again never reaches this
process: a client that stayed connected would miss events, even ``finished``. This listener retries
every second and, once subscribed again, replays from the job store what each job room here
missed since the last event it relayed (clients drop duplicates by ``seq``).
"""

import logging
import time

import socketio as python_socketio

from notifier.events import FINISHED, NAMESPACE, event_for
from notifier.store import FINAL_STATES

from .metrics import RelayCounting, counting_manager, job_rooms

log = logging.getLogger(__name__)
RETRY_INTERVAL = 1.0


class ResyncingRedisManager(RelayCounting, python_socketio.RedisManager):
    """The Redis client manager, plus a replay from the job store after each re-subscribe."""

    def __init__(self, url, store, channel="flask-socketio"):
        super().__init__(url, channel=channel)
        self.store = store
        self.relayed = {}  # job room -> seq of the last event this process passed on to it

    def _handle_emit(self, message):
        data = message.get("data")
        snapshot = data[0] if isinstance(data, list) and len(data) == 1 else None
        room = message.get("room")
        if message.get("namespace") == NAMESPACE and isinstance(snapshot, dict) and room:
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
                time.sleep(RETRY_INTERVAL)

    def resync(self):
        """Send each job room here the events published while this process was not listening."""
        rooms = job_rooms(self)
        for room in list(self.relayed):
            if room not in rooms:
                del self.relayed[room]
        replayed = 0
        for room in rooms:
            for snapshot in self.store.history(room, self.relayed.get(room, -1)):
                self.emit(event_for(snapshot), snapshot, namespace=NAMESPACE, room=room,
                          ignore_queue=True)
                self.relayed[room] = snapshot["seq"]
                replayed += 1
                if snapshot["state"] in FINAL_STATES:
                    self.relayed.pop(room, None)
                    self._handle_close_room({"room": room, "namespace": NAMESPACE})
                    break
        log.warning("message queue back: replayed %d events to %d job rooms", replayed, len(rooms))


def relay_manager(url, store):
    """The client manager for the message queue at ``url``: resyncing for Redis, else counting."""
    if url.startswith(("redis://", "rediss://")):
        return ResyncingRedisManager(url, store)
    return counting_manager(url)
