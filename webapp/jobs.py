"""Submitting jobs: the form's and the API's one way into the job store and the broker."""

import logging

import redis
from flask import current_app

from tasks import KINDS

from .metrics import count_submitted

log = logging.getLogger(__name__)


class UnknownKind(ValueError):
    pass


class BrokerUnavailable(RuntimeError):
    """The job could not be handed to the workers; nothing was kept."""


def submit_job(kind, params):
    """Validate, record and enqueue a job; returns its first snapshot and its cancel token.

    Raises UnknownKind or ParamsInvalid for bad input (nothing is recorded), redis errors when the
    store is down (nothing is recorded) and BrokerUnavailable when the broker is down (the task's
    ``apply_async`` removed the record again).
    """
    job_kind = KINDS.get(kind) if isinstance(kind, str) else None
    if job_kind is None:
        raise UnknownKind(kind)
    params = job_kind.clean(params)
    try:
        result = job_kind.task.apply_async(kwargs=params)
    except redis.RedisError:
        raise  # the store is down: nothing was recorded nor sent
    except Exception as exc:
        log.error("could not enqueue a %s job: %s", kind, exc)
        raise BrokerUnavailable("the job queue is unavailable, try again shortly") from exc
    count_submitted(current_app, kind)
    return result.job, result.cancel_token
