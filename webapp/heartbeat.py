"""This process's background loop: a ``heartbeat`` to its clients, and the stalled-job check.

One loop per web process, started with ``socketio.start_background_task``. Every beat, the process
that holds a short Redis lock declares running jobs that showed no sign of life for
``JOB_STALL_TIMEOUT`` seconds ``LOST``, so several web processes never fight over a job.
"""

import logging
import os
import socket
import time

import redis

from notifier import events
from notifier.store import LOST, RUNNING_STATES, JobNotFound, JobRefused

from .extensions import socketio

log = logging.getLogger(__name__)
SERVER_ID = f"{socket.gethostname()}:{os.getpid()}"


def declare_stalled_jobs_lost(store, stall_timeout):
    """Mark each running job silent for ``stall_timeout`` seconds LOST and publish it; returns ids."""
    lost = []
    for job_id in store.stalled(stall_timeout):
        try:
            snapshot = store.update(job_id, only_from=RUNNING_STATES, stale_for=stall_timeout,
                                    state=LOST, message="lost",
                                    error=f"no sign of life from its worker for {stall_timeout:g} s")
        except (JobRefused, JobNotFound):
            continue  # it moved on, or came back to life, since we looked
        events.publish(socketio, snapshot)
        lost.append(job_id)
    return lost


def _beat(store, settings):
    interval = settings.heartbeat_interval
    lock_key = f"{settings.key_prefix}stall-check-lock"
    while True:
        socketio.sleep(interval)
        try:
            active = store.running_count()
            if store.redis.set(lock_key, SERVER_ID, nx=True, px=max(1, int(interval * 900))):
                for job_id in declare_stalled_jobs_lost(store, settings.stall_timeout):
                    log.warning("job %s declared LOST", job_id)
        except redis.RedisError as exc:
            active = None
            log.warning("heartbeat could not reach Redis: %s", exc)
        except Exception:
            active = None
            log.exception("heartbeat check failed")
        # Each process beats for its own clients only, so it keeps beating through a Redis outage.
        socketio.emit(events.HEARTBEAT,
                      {"ts": time.time(), "server": SERVER_ID, "active_jobs": active},
                      namespace=events.NAMESPACE, ignore_queue=True)


def start_heartbeat(app):
    """Start this process's single heartbeat loop (a second call does nothing)."""
    if "notifier.heartbeat" not in app.extensions and app.extensions["notifier.settings"].heartbeat_interval > 0:
        app.extensions["notifier.heartbeat"] = socketio.start_background_task(
            _beat, app.extensions["notifier.store"], app.extensions["notifier.settings"])
