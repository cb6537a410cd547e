"""The subscribe protocol: how job events reach this process's clients, counted, in ``seq`` order,
each once.

``join_with_replay`` is the one way a client joins a job room: it joins before reading the job
(so nothing published meanwhile is missed), holds that client's live events while its missed ones
go out, then lets through only live events newer than what the client has. What the relay keeps
per room and per client is dropped as soon as the room closes or the client leaves it.

python-socketio internals overridden here and in ``listeners.py`` (read from python-socketio
5.18, which pyproject.toml pins; ``tests/test_relay.py`` fails if one of them changes shape):
``PubSubManager._handle_emit``, ``BaseManager.basic_leave_room``, ``BaseManager.basic_close_room``,
``RedisManager._redis_listen_with_retries`` and ``KombuManager._listen``.
"""

import logging
import threading
from dataclasses import dataclass, field

from notifier.events import FINISHED, NAMESPACE, PROGRESS, event_for

OVERRIDDEN = ("_handle_emit", "basic_leave_room", "basic_close_room")

log = logging.getLogger(__name__)


def _snapshot_of(message):
    data = message.get("data")
    return data[0] if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict) else None


@dataclass
class _Room:
    """What this process keeps about one open job room; dropped when the room closes or empties."""

    held: dict = field(default_factory=dict)  # sid -> [(event, snapshot)] held while its replay goes out
    floors: dict = field(default_factory=dict)  # sid -> highest seq that sid already has
    relayed: int = -1  # seq of the last event passed on to this room
    resynced: int = -1  # seq of the last event a resync sent this room from the job store


class OrderedRelay:
    """Mixin for a python-socketio pub/sub manager: counts job events, and gives a subscriber that
    replays each seq once, in order."""

    def __init__(self, *args, store, max_backlog=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.store = store
        self.max_backlog = max_backlog  # packets a client may have waiting (None: no limit)
        self._gate = threading.RLock()  # green under eventlet's and gevent's monkey patching
        self._rooms = {}  # job room -> _Room
        self.relayed = {PROGRESS: 0, FINISHED: 0}  # job events passed on, by event (metrics.py)
        self.dropped = 0  # clients disconnected for reading too slowly (metrics.py)

    # ---- live events ----------------------------------------------------------------------------

    def _handle_emit(self, message):
        snapshot, room = _snapshot_of(message), message.get("room")
        if (message.get("namespace") != NAMESPACE or message.get("event") not in (PROGRESS, FINISHED)
                or snapshot is None or not isinstance(snapshot.get("seq"), int)):
            return super()._handle_emit(message)
        seq = snapshot["seq"]
        self._drop_slow_readers(room)
        with self._gate:  # deciding who is skipped and delivering to the rest is one step
            state = self._rooms.get(room)
            if state is not None and seq <= state.resynced:
                return None  # a resync already sent it, from the job store
            if state is None:
                if room not in self.rooms.get(NAMESPACE, {}):
                    return None  # nobody here watches this job
                state = self._rooms[room] = _Room()
            self.relayed[message["event"]] += 1
            state.relayed = max(state.relayed, seq)
            skip = set(state.held)
            for sid, buffer in state.held.items():
                buffer.append((message["event"], snapshot))
            for sid, floor in list(state.floors.items()):
                if seq <= floor:
                    skip.add(sid)
                else:
                    del state.floors[sid]  # it is past what that client had: the floor is done
            if skip:
                given = message.get("skip_sid") or []
                given = [given] if isinstance(given, str) else list(given)
                message = {**message, "skip_sid": given + sorted(skip)}
            return super()._handle_emit(message)

    def _drop_slow_readers(self, room):
        """Disconnect each client of ``room`` with more than ``max_backlog`` packets still to send:
        it stopped reading, or reads far slower than its events come, and this process would
        hold every later event for it. A client that reconnects resumes from its last seq."""
        if not self.max_backlog:
            return
        sockets = self.server.eio.sockets
        for sid, eio_sid in self.get_participants(NAMESPACE, room):  # a copy: closing may change it
            session = sockets.get(eio_sid)
            waiting = session.queue.qsize() if session is not None and not session.closed else 0
            if waiting <= self.max_backlog:
                continue
            log.warning("client %s reads too slowly (%d packets waiting): disconnected", sid, waiting)
            self.dropped += 1
            session.close(wait=False, abort=True, reason=self.server.eio.reason.SERVER_DISCONNECT)

    def mark_resynced(self, room, seq):
        """Record that ``seq`` went to ``room`` from the job store: when the message queue brings
        it too (it was published while the listener was subscribing again), it is not sent twice."""
        with self._gate:
            state = self._rooms.get(room)
            if state is not None:
                state.resynced = max(state.resynced, seq)

    # ---- joining a room -------------------------------------------------------------------------

    def join_with_replay(self, sid, room, last_seq, read):
        """Put ``sid`` in job ``room`` and bring it up to date; returns the job's snapshot.

        ``read(last_seq)`` returns ``(snapshot, missed)`` from the job store, ``missed`` being the
        recorded events after ``last_seq`` (none when it is None). Events published meanwhile are
        held for ``sid`` (even if the room closes meanwhile) and sent after the missed ones, each
        seq once. What ``read`` (or sending to ``sid``) raises is raised again, with ``sid`` out
        of the room and no longer held. A final job leaves ``sid`` out of its room.
        """
        with self._gate:
            self._rooms.setdefault(room, _Room()).held[sid] = []
            self.enter_room(sid, NAMESPACE, room)
        try:
            return self._bring_up_to_date(sid, room, *read(last_seq))
        except BaseException:  # a client held for good would be skipped for every later event
            self._unhold(sid, room)
            self.leave_room(sid, NAMESPACE, room)
            raise

    def _bring_up_to_date(self, sid, room, snapshot, missed):
        """Send ``sid`` what it missed, then what was held for it meanwhile; then let it go."""
        for past in missed:
            if past["seq"] <= snapshot["seq"]:
                self._send(sid, past)
        if snapshot["finished_at"] is not None:
            self._unhold(sid, room)
            self.leave_room(sid, NAMESPACE, room)  # its room is closed, or about to be
            return snapshot
        have = snapshot["seq"]  # what the snapshot (and the replay) covers is not sent again
        while True:
            with self._gate:
                state = self._rooms[room]  # kept while sid is held
                buffer = state.held[sid]
                if not buffer:
                    if sid in self.rooms.get(NAMESPACE, {}).get(room, ()):
                        state.floors[sid] = have
                    self._unhold(sid, room)
                    return snapshot
                state.held[sid] = []
            for event, held in buffer:  # outside the gate: events arriving now are held
                if held["seq"] > have:
                    self._send(sid, held)
                    have = held["seq"]

    def _send(self, sid, snapshot):
        self.server.emit(event_for(snapshot), snapshot, to=sid, namespace=NAMESPACE, ignore_queue=True)

    def _unhold(self, sid, room):
        self._tidy(room, lambda state: state.held.pop(sid, None))

    def _tidy(self, room, forget):
        """Apply ``forget`` to what is kept for ``room``, then drop all of it if nobody here is in
        the room or still being brought up to date in it."""
        with self._gate:
            state = self._rooms.get(room)
            if state is not None:
                forget(state)
                if not state.held and room not in self.rooms.get(NAMESPACE, {}):
                    del self._rooms[room]

    # ---- leaving and closing: nothing is kept for a room or a client that is gone ---------------
    # (a client still being brought up to date keeps its held events: join_with_replay sends
    # them, the room's `finished` among them, then lets go)

    def basic_leave_room(self, sid, namespace, room):
        super().basic_leave_room(sid, namespace, room)
        if namespace == NAMESPACE:
            self._tidy(room, lambda state: state.floors.pop(sid, None))

    def basic_close_room(self, room, namespace):
        super().basic_close_room(room, namespace)
        if namespace == NAMESPACE:
            self._tidy(room, lambda state: state.floors.clear())

    # ---- introspection ----------------------------------------------------------------------------

    def job_rooms(self):
        """The job rooms open in /jobs on this process (not the per-client rooms)."""
        rooms = list(self.rooms.get(NAMESPACE, {}))
        return [room for room in rooms if room is not None and not self.is_sid_room(NAMESPACE, room)]

    def last_relayed(self, room):
        """The seq of the last event passed on to ``room`` here (-1: none yet)."""
        with self._gate:
            state = self._rooms.get(room)
            return state.relayed if state else -1

    def tracked(self):
        """How many rooms and clients this relay keeps state for (zero when nobody watches)."""
        with self._gate:
            return sum(1 + len(state.held) + len(state.floors) for state in self._rooms.values())
