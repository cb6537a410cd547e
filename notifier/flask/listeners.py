"""The message-queue listeners of this process, made OrderedRelays, whole across outages.

python-socketio's listeners re-subscribe after an outage with a back-off that grows to a minute,
and whatever the workers published before they are subscribed again never reaches this process:
a client that stayed connected would miss events, even ``finished``. These listeners retry every
second and, once listening again, replay from the job store what each job room here missed since
the last event it relayed. Redis and RabbitMQ alike.

The first time is no different: the listener starts with the first client, and a client that
subscribes before the listener's queue or channel exists would otherwise miss what was published
in between. What is published after the listener subscribed and before it read the job store comes
both ways; the relay sends it once (``OrderedRelay.mark_resynced``).
"""

import logging
import time

import socketio as python_socketio

from notifier.events import NAMESPACE, event_for

from .relay import OrderedRelay

log = logging.getLogger(__name__)
RETRY_INTERVAL = 1.0
OVERRIDDEN = {"redis": ("_redis_listen_with_retries",), "kombu": ("_listen",)}


class Resyncing(OrderedRelay):
    """An OrderedRelay whose listener reconnects every RETRY_INTERVAL and then resyncs."""

    def resync(self):
        """Send each job room here the events published while this process was not listening;
        returns how many events to how many rooms."""
        replayed, rooms = 0, self.job_rooms()
        for room in rooms:
            for snapshot in self.store.history(room, self.last_relayed(room)):
                # The same path as a message from the queue: counted, ordered, tracked by the relay.
                self._handle_emit({"method": "emit", "event": event_for(snapshot), "data": [snapshot],
                                   "namespace": NAMESPACE, "room": room, "host_id": self.host_id})
                self.mark_resynced(room, snapshot["seq"])
                replayed += 1
                if snapshot["finished_at"] is not None:
                    self._handle_close_room({"room": room, "namespace": NAMESPACE})
                    break
        return replayed, len(rooms)

    def _listening(self, connect, listen):
        """Listen for good: (re)connect every RETRY_INTERVAL, each time resyncing what was missed."""
        lost = False
        while True:
            try:
                connect()
                replayed, rooms = self.resync()
                if lost or replayed:
                    log.warning("message queue %s: replayed %d events to %d job rooms",
                                "back" if lost else "listening", replayed, rooms)
                yield from listen()
            except Exception as exc:
                log.warning("message queue unreachable (%s); retrying in %g s", exc, RETRY_INTERVAL)
            lost = True
            time.sleep(RETRY_INTERVAL)


class ResyncingRedisManager(Resyncing, python_socketio.RedisManager):
    """The Redis client manager, made an OrderedRelay."""

    def _redis_listen_with_retries(self):
        def connect():
            self._redis_connect()
            self.pubsub.subscribe(self.channel)

        return self._listening(connect, lambda: self.pubsub.listen())


class ResyncingKombuManager(Resyncing, python_socketio.KombuManager):
    """The manager for RabbitMQ (or any other Kombu transport), made an OrderedRelay."""

    def _listen(self):
        reader_queue, current = self._queue(), {}

        def connect():
            if current:  # the connection of the previous try
                current["connection"].release()
            current["connection"] = self._connection()
            current["queue"] = current["connection"].SimpleQueue(reader_queue)

        def listen():
            while True:
                message = current["queue"].get(block=True)
                message.ack()
                yield message.payload

        return self._listening(connect, listen)


def relay_manager(url, store, channel="flask-socketio", max_backlog=None):
    """The client manager Flask-SocketIO would pick for ``url`` (same channel), made a
    Resyncing relay: Redis, or Kombu for ``amqp://`` and the rest."""
    manager = ResyncingRedisManager if url.startswith(("redis://", "rediss://")) else ResyncingKombuManager
    return manager(url, channel=channel, store=store, max_backlog=max_backlog)
