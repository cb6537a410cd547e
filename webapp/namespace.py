"""The Socket.IO namespace ``/jobs``: clients subscribe to one room per job."""

import logging

import redis
from flask import current_app, request
from flask_socketio import Namespace, leave_room

from notifier.events import event_for
from notifier.store import FINAL_STATES, JobNotFound, is_job_id

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
    """Answers ``subscribe`` with the job's snapshot (and missed events), ``unsubscribe`` with ok."""

    def on_subscribe(self, data=None):
        try:
            job_id, last_seq = _parse(data, with_last_seq=True)
        except InvalidRequest as exc:
            return _error("invalid", str(exc))
        store = current_app.extensions["notifier.store"]
        relay, sid = self.socketio.server.manager, request.sid

        def send(event, snapshot):
            self.socketio.emit(event, snapshot, to=sid, namespace=self.namespace, ignore_queue=True)

        # Join before reading, so nothing published meanwhile is missed; its live events wait
        # until the replay has gone out, so the client gets every seq once, in order.
        relay.join_held(sid, self.namespace, job_id)
        try:
            snapshot = store.get(job_id)
            missed = store.history(job_id, last_seq) if last_seq is not None else []
        except (JobNotFound, redis.RedisError) as exc:
            relay.release(sid, job_id)
            leave_room(job_id)
            if isinstance(exc, JobNotFound):
                return _error("not_found", f"no job with id {job_id}")
            log.warning("subscribe to %s failed: Redis is unavailable (%s)", job_id, exc)
            return _error("unavailable", "job state is unavailable right now, try again shortly")
        for past in missed:
            if past["seq"] <= snapshot["seq"]:
                send(event_for(past), past)
        if snapshot["state"] in FINAL_STATES:
            relay.release(sid, job_id)
            leave_room(job_id)  # its room is closed, or about to be: nothing more will come
        else:  # what the snapshot (and the replay) covers is not sent again
            relay.release(sid, job_id, send, after_seq=snapshot["seq"])
        return {"ok": True, "job": snapshot}

    def on_unsubscribe(self, data=None):
        try:
            job_id, _ = _parse(data)
        except InvalidRequest as exc:
            return _error("invalid", str(exc))
        leave_room(job_id)
        return {"ok": True}
