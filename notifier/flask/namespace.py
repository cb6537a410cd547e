"""The Socket.IO namespace ``/jobs``: clients subscribe to one room per job."""

import logging

import redis
from flask import request
from flask_socketio import Namespace, leave_room

from notifier.store import JobNotFound, is_job_id

log = logging.getLogger(__name__)


class InvalidRequest(ValueError):
    pass


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
                                 or last_seq < -1):
        raise InvalidRequest("last_seq must be an integer >= -1")
    return job_id, last_seq


class JobsNamespace(Namespace):
    """Answers ``subscribe`` with the job's snapshot (and missed events), ``unsubscribe`` with ok.

    The ordering of replayed and live events is the relay's (``relay.join_with_replay``); this
    class only parses what clients send and turns failures into error acks.
    """

    def __init__(self, namespace, relay, store, on_connect=None):
        super().__init__(namespace)
        self.relay, self.store = relay, store
        self._on_connect = on_connect

    def on_connect(self, auth=None):
        """A client is here: the process serves (see ``NotifierState.serving``)."""
        if self._on_connect:
            self._on_connect()

    def on_subscribe(self, data=None):
        """Join a job's room and catch up from ``last_seq``: how every page and client follows a job."""
        try:
            job_id, last_seq = _parse(data, with_last_seq=True)
        except InvalidRequest as exc:
            return _error("invalid", str(exc))
        replayed = []

        def read(last_seq):
            snapshot = self.store.get(job_id)
            replayed.extend(self.store.history(job_id, last_seq) if last_seq is not None else [])
            return snapshot, replayed

        try:
            snapshot = self.relay.join_with_replay(request.sid, job_id, last_seq, read)
        except JobNotFound:
            return _error("not_found", f"no job with id {job_id}")
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
