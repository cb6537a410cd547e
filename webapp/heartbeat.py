"""This process's background loops: a ``heartbeat`` to its clients, and the stalled-job check.

Each web process runs one heartbeat loop and one stall-check loop, started with
``socketio.start_background_task``. The stall check runs on its own schedule, so switching the
heartbeat off (``HEARTBEAT_INTERVAL=0``) does not switch off LOST detection. On each check, the
process that takes a short store lock declares running jobs that showed no sign of life for
``JOB_STALL_TIMEOUT`` seconds (by Redis's clock) ``LOST``, so several web processes never fight
over a job. After the check could not reach Redis, it declares nothing for one more
``JOB_STALL_TIMEOUT``: no job could show life during the outage, and the workers may reconnect
later than this process does.

The heartbeat goes out in slices of ``HEARTBEAT_SLICE`` clients, yielding between them: one
namespace-wide emit to 10k sockets would queue every job event behind 10k sends (over a second
on one core), while a slice holds them up for a few milliseconds at most.
"""

import logging
import time

import redis

from notifier import events
from notifier.store import LOST, RUNNING_STATES, JobNotFound, JobRefused

from .extensions import SERVER_ID, socketio

log = logging.getLogger(__name__)

HEARTBEAT_SLICE = 150  # clients sent one heartbeat before job events get their turn
HEARTBEAT_PAUSE = 0.002  # seconds between slices: job events and replays go first


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
    store_away, grace_until = False, 0.0
    while True:
        socketio.sleep(interval)
        try:
            locked = store.try_lock("stall-check", SERVER_ID, interval * 0.9)
            if store_away:
                store_away, grace_until = False, time.monotonic() + settings.stall_timeout
                log.warning("job store reachable again: no job is declared LOST for the next %g s",
                            settings.stall_timeout)
            if locked and time.monotonic() >= grace_until:
                for job_id in declare_stalled_jobs_lost(store, settings.stall_timeout):
                    log.warning("job %s declared LOST", job_id)
        except redis.RedisError as exc:
            store_away = True
            log.warning("stalled-job check could not reach Redis: %s", exc)
        except Exception:
            log.exception("stalled-job check failed")


def _beat(store, settings):
    known = {}  # what the last beat could read, repeated while Redis cannot be read
    while True:
        socketio.sleep(settings.heartbeat_interval)
        try:
            beat(store, known)
        except Exception:  # one failed beat must not end the heartbeat for good
            log.exception("heartbeat failed; the next one is due in %g s", settings.heartbeat_interval)


def beat(store, known=None):
    """Send one heartbeat to each of this process's clients, a slice at a time.

    ``known`` carries ``active_jobs`` from one beat to the next: while Redis cannot be read the
    last count is repeated (never a null), and before any count was read the field is left out.
    """
    known = {} if known is None else known
    try:
        known["active_jobs"] = store.running_count()
    except redis.RedisError as exc:
        log.warning("heartbeat could not reach Redis: %s", exc)
    # Each process beats for its own clients only, so it keeps beating through a Redis outage.
    payload = {"ts": time.time(), "server": SERVER_ID, **known}
    for clients in _slices(_connected(), HEARTBEAT_SLICE):
        socketio.emit(events.HEARTBEAT, payload, namespace=events.NAMESPACE, to=clients,
                      ignore_queue=True)
        socketio.sleep(HEARTBEAT_PAUSE)


def _connected():
    """The sids of this process's clients on the namespace (each is a room of its own)."""
    return [sid for sid, _ in socketio.server.manager.get_participants(events.NAMESPACE, None)]


def _slices(items, size):
    return (items[start:start + size] for start in range(0, len(items), size))


def start_background_loops(app):
    """Start this process's heartbeat loop (unless switched off) and its stall check, once."""
    if "notifier.loops" in app.extensions:
        return
    store, settings = app.extensions["notifier.store"], app.extensions["notifier.settings"]
    loops = [socketio.start_background_task(_check_stalled, store, settings)]
    if settings.heartbeat_interval > 0:
        loops.append(socketio.start_background_task(_beat, store, settings))
    app.extensions["notifier.loops"] = loops
