"""The stalled-job check: a running job whose worker shows no sign of life is declared ``LOST``.

Each web process runs one stall-check loop, started with ``socketio.start_background_task`` once
it serves, on a schedule of its own (switching the heartbeat off does not switch off LOST
detection). On each check, the process that takes a short store lock declares running jobs that
showed no sign of life for ``JOB_STALL_TIMEOUT`` seconds (by Redis's clock) ``LOST``, so several
web processes never fight over a job. After the check could not reach Redis, it declares nothing
for one more ``JOB_STALL_TIMEOUT``: no job could show life during the outage, and the workers may
reconnect later than this process does.
"""

import logging
import time

import redis

from notifier import events
from notifier.store import LOST, RUNNING_STATES, JobNotFound, JobRefused

from .heartbeat import server_id

log = logging.getLogger(__name__)


def stall_check_interval(stall_timeout):
    """How often to look for stalled jobs: a few times per timeout, at most once a second."""
    return min(1.0, max(0.1, stall_timeout / 4))


def declare_stalled_jobs_lost(store, socketio, stall_timeout):
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


def _check_stalled(socketio, store, settings):
    interval = stall_check_interval(settings.stall_timeout)
    store_away, grace_until = False, 0.0
    while True:
        socketio.sleep(interval)
        try:
            locked = store.try_lock("stall-check", server_id(), interval * 0.9)
            if store_away:
                store_away, grace_until = False, time.monotonic() + settings.stall_timeout
                log.warning("job store reachable again: no job is declared LOST for the next %g s",
                            settings.stall_timeout)
            if locked and time.monotonic() >= grace_until:
                for job_id in declare_stalled_jobs_lost(store, socketio, settings.stall_timeout):
                    log.warning("job %s declared LOST", job_id)
        except redis.RedisError as exc:
            store_away = True
            log.warning("stalled-job check could not reach Redis: %s", exc)
        except Exception:
            log.exception("stalled-job check failed")


def start(socketio, store, settings):
    """Start this process's stall-check loop."""
    return socketio.start_background_task(_check_stalled, socketio, store, settings)
