"""Submitting and cancelling jobs: the web's only way into the job store and the broker."""

import logging

from notifier import access, events
from tasks import KINDS

from .extensions import get_store, socketio
from .metrics import JOBS_SUBMITTED

log = logging.getLogger(__name__)


class UnknownKind(ValueError):
    pass


class BrokerUnavailable(RuntimeError):
    """The job could not be handed to the workers; nothing was kept."""


def submit_job(kind, params):
    """Validate, record and enqueue a job; returns its first snapshot and its cancel token.

    Raises UnknownKind or ParamsInvalid for bad input (nothing is recorded), redis errors when the
    store is down (nothing is recorded) and BrokerUnavailable when the broker is down (the record
    is removed again).
    """
    job_kind = KINDS.get(kind) if isinstance(kind, str) else None
    if job_kind is None:
        raise UnknownKind(kind)
    params = job_kind.clean(params)
    token, internal = access.issue()
    snapshot = get_store().create(kind, params, internal=internal)
    job_id = snapshot["job_id"]
    try:
        job_kind.task.apply_async(args=(job_id, params), task_id=job_id)
    except Exception as exc:
        log.error("could not enqueue job %s: %s", job_id, exc)
        get_store().delete(job_id)
        raise BrokerUnavailable("the job queue is unavailable, try again shortly") from exc
    JOBS_SUBMITTED.labels(kind=kind).inc()
    return snapshot, token


def cancel_job(job_id, token):
    """Ask a job to stop, for the holder of its cancel ``token``: a queued job is revoked at once
    (its worker will skip it), a running one stops at its next step.

    Returns the snapshot; raises JobNotFound, access.Forbidden when ``token`` is not the job's,
    or JobRefused when the job is already final.
    """
    access.check(get_store(), job_id, token)
    revoked = events.cancel(get_store(), socketio, job_id, message="cancelled before it started")
    return revoked or get_store().get(job_id)
