"""The Socket.IO namespace ``/jobs``: clients subscribe to one room per job, each connection
within a replay budget, each job as far as the app's ``can_watch`` lets them."""

import logging
import math
import time

import redis
from flask import request
from flask_socketio import Namespace, leave_room

from notifier.store import JobNotFound, is_job_id

from .permissions import WATCH_FORBIDDEN, HostRules

log = logging.getLogger(__name__)
# The largest last_seq taken: the largest integer a browser's JavaScript holds exactly. A seq never
# gets near it, and a larger one would not even name a stream entry in Redis.
MAX_SEQ = 2**53 - 1


class InvalidRequest(ValueError):
    pass


class ReplayRefused(Exception):
    def __init__(self, retry_after):
        super().__init__(f"too many replayed events on this connection: try again in {retry_after} s")
        self.retry_after = retry_after


class ReplayBudget:
    """How many replayed events one connection may still ask for: ``burst`` at first, refilled at
    ``burst / 2`` a minute. A replay is sent in one go, and a client that asks for many and never
    reads would make this process hold all of them; with the budget it can hold at most a few
    replays of a whole history per connection (two, and one more a minute)."""

    def __init__(self, burst):
        self.burst, self.rate = burst, burst / 2 / 60  # events per second
        self.left, self.at = float(burst), time.monotonic()

    def spend(self, events):
        """Take ``events`` from the budget, or raise ReplayRefused (taking nothing). A replay
        costs at most half the burst: Redis trims a history only approximately, so one may hold
        more events than the configured length."""
        cost = min(events, self.burst / 2)
        now = time.monotonic()
        self.left, self.at = min(self.burst, self.left + (now - self.at) * self.rate), now
        if cost > self.left:
            raise ReplayRefused(math.ceil((cost - self.left) / self.rate))
        self.left -= cost


def replay_burst(history_length):
    """The replayed events one connection may ask for at once: a page's first load, and a
    reload, of a whole history."""
    return 2 * history_length


def _error(code, message):
    return {"ok": False, "error": {"code": code, "message": message}}


def _parse(data, *, with_last_seq=False):
    """Check a client's payload; returns (job_id, last_seq) or raises InvalidRequest."""
    if not isinstance(data, dict):
        raise InvalidRequest("payload must be an object like {\"job_id\": \"...\"}")
    job_id = data.get("job_id")
    if not is_job_id(job_id):
        raise InvalidRequest("job_id must be a job id (a UUID4 string)")
    last_seq = data.get("last_seq") if with_last_seq else None
    if last_seq is not None and (isinstance(last_seq, bool) or not isinstance(last_seq, int)
                                 or not -1 <= last_seq <= MAX_SEQ):
        raise InvalidRequest(f"last_seq must be an integer from -1 to {MAX_SEQ}")
    return job_id, last_seq


class JobsNamespace(Namespace):
    """Answers ``subscribe`` with the job's snapshot (and missed events), ``unsubscribe`` with ok.

    The ordering of replayed and live events is the relay's (``relay.join_with_replay``); this
    class only parses what clients send and turns failures into error acks.
    """

    def __init__(self, namespace, relay, store, *, rules=None, history_length=1000, on_connect=None):
        super().__init__(namespace)
        self.relay, self.store = relay, store
        self.rules = rules or HostRules()
        self.replay_burst = replay_burst(history_length)
        self.budgets = {}  # sid -> ReplayBudget, for as long as the connection lasts
        self._on_connect = on_connect

    def on_connect(self, auth=None):
        """A client is here: the process serves (see ``NotifierState.serving``)."""
        if self._on_connect:
            self._on_connect()

    def on_disconnect(self, reason=None):
        self.budgets.pop(request.sid, None)

    def on_subscribe(self, data=None):
        """Join a job's room and catch up from ``last_seq``: how every page and client follows a job."""
        try:
            job_id, last_seq = _parse(data, with_last_seq=True)
        except InvalidRequest as exc:
            return _error("invalid", str(exc))
        replayed = []

        def read(last_seq):
            snapshot = self.store.get(job_id)
            if last_seq is not None and last_seq < snapshot["seq"]:  # else nothing was missed
                missed = self.store.history(job_id, last_seq)
                budget = self.budgets.setdefault(request.sid, ReplayBudget(self.replay_burst))
                budget.spend(len(missed))
                replayed.extend(missed)
            return snapshot, replayed

        try:
            # Asked before joining (Flask-SocketIO runs this with the connection's request
            # context and session): a refused client is never in the room, not even for a moment.
            if self.rules.watching_is_checked and not self.rules.may_watch(self.store.get(job_id)):
                return _error("forbidden", WATCH_FORBIDDEN)
            snapshot = self.relay.join_with_replay(request.sid, job_id, last_seq, read)
        except JobNotFound:
            return _error("not_found", f"no job with id {job_id}")
        except ReplayRefused as exc:
            refused = _error("rate_limited", str(exc))
            refused["error"]["retry_after"] = exc.retry_after  # seconds
            return refused
        except redis.RedisError as exc:
            log.warning("subscribe to %s failed: Redis is unavailable (%s)", job_id, exc)
            return _error("unavailable", "job state is unavailable right now, try again shortly")
        ack = {"ok": True, "job": snapshot}
        if last_seq is not None:
            # Where the replay started: older seqs are gone from the job's capped history, so a
            # client whose ack overtook the replayed events knows which seqs are still coming.
            ack["history_from"] = replayed[0]["seq"] if replayed else snapshot["seq"]
        return ack

    def on_unsubscribe(self, data=None):
        """Leave a job's room: a page that stops showing a job stops receiving it."""
        try:
            job_id, _ = _parse(data)
        except InvalidRequest as exc:
            return _error("invalid", str(exc))
        leave_room(job_id)
        return {"ok": True}
