"""This process's background loops: a ``heartbeat`` to its clients, and the stalled-job check.

Each web process runs one heartbeat loop and one stall-check loop, started with
``socketio.start_background_task``. The stall check runs on its own schedule, so switching the
heartbeat off (``HEARTBEAT_INTERVAL=0``) does not switch off LOST detection. On each check, the
process that takes a short store lock declares running jobs that showed no sign of life for
``JOB_STALL_TIMEOUT`` seconds (by Redis's clock) ``LOST``, so several web processes never fight
over a job.
"""

import logging
import time

import redis

from notifier import events
from notifier.store import LOST, RUNNING_STATES, JobNotFound, JobRefused

from .extensions import SERVER_ID, socketio

log = logging.getLogger(__name__)


def stall_check_interval(stall_timeout):
    """How often to look for stalled jobs: a few times per timeout, at most once a second."""
    return min(1.0, max(0.1, stall_timeout / 4))


def declare_stalled_jobs_lost(store, stall_timeout):
    """Mark each running job silent for ``stall_timeout`` seconds LOST and publish it; returns ids."""
    lost = []
    for job_id in store.stalled(stall_timeout):
        try:
            events.record(store, socketio, job_id, only_from=RUNNING_STATES, stale_for=stall_timeout,
                          state=LOST, message="lost",
                          error=f"no sign of life from its worker for {stall_timeout:g} s")
        except (JobRefused, JobNotFound):
            continue  # it moved on, or came back to life, since we looked
        lost.append(job_id)
    return lost


def _check_stalled(store, settings):
    interval = stall_check_interval(settings.stall_timeout)
    while True:
        socketio.sleep(interval)
        try:
            if store.try_lock("stall-check", SERVER_ID, interval * 0.9):
                for job_id in declare_stalled_jobs_lost(store, settings.stall_timeout):
                    log.warning("job %s declared LOST", job_id)
        except redis.RedisError as exc:
            log.warning("stalled-job check could not reach Redis: %s", exc)
        except Exception:
            log.exception("stalled-job check failed")


def _beat(store, settings):
    while True:
        socketio.sleep(settings.heartbeat_interval)
        try:
            active = store.running_count()
        except redis.RedisError as exc:
            active = None
            log.warning("heartbeat could not reach Redis: %s", exc)
        # Each process beats for its own clients only, so it keeps beating through a Redis outage.
        socketio.emit(events.HEARTBEAT,
                      {"ts": time.time(), "server": SERVER_ID, "active_jobs": active},
                      namespace=events.NAMESPACE, ignore_queue=True)


def start_background_loops(app):
    """Start this process's heartbeat loop (unless switched off) and its stall check, once."""
    if "notifier.loops" in app.extensions:
        return
    store, settings = app.extensions["notifier.store"], app.extensions["notifier.settings"]
    loops = [socketio.start_background_task(_check_stalled, store, settings)]
    if settings.heartbeat_interval > 0:
        loops.append(socketio.start_background_task(_beat, store, settings))
    app.extensions["notifier.loops"] = loops
