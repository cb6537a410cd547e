"""The progress reporter: how a running job tells the world about itself.

Each worker process owns one write-only ``SocketIO(message_queue=...)`` and one job store, made on
first use and reused. Every change is written to the store first (which numbers it with ``seq`` and
keeps it for replay), then published to the job's room. Progress is throttled, a keep-alive thread
shows the job is alive during long steps and notices a cancel request, and the final event is sent
from one place: ``run_job``.
"""

import functools
import logging
import os
import socket
import threading
import time

from flask_socketio import SocketIO

from notifier import events
from notifier.settings import Settings
from notifier.store import (FAILURE, PENDING, PROGRESS, REVOKED, RUNNING_STATES, STARTED,
                            SUCCESS, JobNotFound, JobRefused, JobStore)

log = logging.getLogger(__name__)

KEEPALIVE_INTERVAL = 1.0
# A running job whose runner has shown no life for this long is taken over by a new delivery.
LEASE = 5 * KEEPALIVE_INTERVAL


class JobCancelled(Exception):
    """Raised inside a job at its next step after someone asked to cancel it."""


@functools.cache
def _runtime():
    """This process's settings, job store and emitter (made after the worker forks, then reused)."""
    settings = Settings.from_env()
    store = JobStore.from_settings(settings, patient=True)
    # async_mode is explicit: left alone it picks eventlet whenever eventlet is installed.
    emitter = SocketIO(message_queue=settings.message_queue, async_mode="threading")
    return settings, store, emitter


class ProgressReporter:
    """Publishes one job's events; a job kind only calls ``steps``, ``progress`` and ``log``."""

    def __init__(self, job_id, store, emitter, min_interval=0.1):
        self.job_id = job_id
        self.store = store
        self.emitter = emitter
        self.min_interval = min_interval
        self.cancelled = threading.Event()
        self._stop = threading.Event()
        self._last_publish = 0.0
        self._pending = None  # the newest throttled-away progress, sent before anything else

    def _publish(self, **changes):
        snapshot = self.store.update(self.job_id, **changes)
        events.publish(self.emitter, snapshot)
        self._last_publish = time.monotonic()
        return snapshot

    def _flush(self):
        if self._pending:
            pending, self._pending = self._pending, None
            self._publish(**pending)

    def progress(self, current, total=None, message=None):
        """Report how far the job is; raises JobCancelled if a cancel was requested."""
        if self.cancelled.is_set():
            raise JobCancelled()
        changes = {"state": PROGRESS, "current": current}
        if total is not None:
            changes["total"] = total
        if message is not None:
            changes["message"] = message
        if time.monotonic() - self._last_publish < self.min_interval and current != total:
            self._pending = changes
            return
        self._pending = None
        self._publish(**changes)

    def log(self, message):
        """Publish a message without changing the job's progress."""
        self._flush()
        self._publish(message=message)

    def steps(self, total, message="step {n} of {total}"):
        """Yield 1..total, reporting each step once its body has run."""
        for n in range(1, total + 1):
            if self.cancelled.is_set():
                raise JobCancelled()
            yield n
            self.progress(n, total, message.format(n=n, total=total))

    def _keep_alive(self):
        while not self._stop.wait(KEEPALIVE_INTERVAL):
            try:
                self.store.touch(self.job_id)
                if self.store.get_field(self.job_id, "cancel_requested"):
                    self.cancelled.set()
            except Exception:  # a passing Redis error must not kill the job; try again next beat
                log.warning("keep-alive for job %s failed", self.job_id, exc_info=True)

    def start(self):
        """Mark the job STARTED; False if it must not run (final, or alive on another worker)."""
        deadline = time.monotonic() + LEASE + KEEPALIVE_INTERVAL
        while True:
            try:
                attempts = (self.store.get_field(self.job_id, "attempts") or 0) + 1
                message = "started" if attempts == 1 else f"restarted (attempt {attempts})"
                self._publish(only_from=(PENDING,) if attempts == 1 else (PENDING, *RUNNING_STATES),
                              stale_for=None if attempts == 1 else LEASE,
                              state=STARTED, attempts=attempts, message=message,
                              worker=f"{socket.gethostname()}:{os.getpid()}")
                break
            except JobNotFound:
                log.warning("job %s is unknown (expired?): not running it", self.job_id)
                return False
            except JobRefused as refused:
                # Running elsewhere, or delivered again after its worker died: wait out the lease.
                if refused.state not in RUNNING_STATES or time.monotonic() > deadline:
                    log.info("job %s is %s: not running it again", self.job_id, refused.state)
                    return False
                time.sleep(KEEPALIVE_INTERVAL)
        threading.Thread(target=self._keep_alive, name=f"keepalive-{self.job_id[:8]}",
                         daemon=True).start()
        return True

    def finish(self, state, *, result=None, error=None, message):
        """Publish the final event (the store refuses any later change), which closes the room."""
        self._stop.set()
        self._flush()
        return self._publish(state=state, result=result, error=error, message=message)


def run_job(job_id, body):
    """Run ``body(reporter)`` as job ``job_id``, publishing STARTED and exactly one final event."""
    settings, store, emitter = _runtime()
    reporter = ProgressReporter(job_id, store, emitter, settings.progress_min_interval)
    if not reporter.start():
        return
    try:
        result = body(reporter)
    except JobCancelled:
        reporter.finish(REVOKED, message="cancelled")
    except JobRefused as refused:
        # Someone else ended the job meanwhile (declared LOST, say): its final event is already out.
        log.warning("job %s was ended elsewhere (%s); dropping its late events", job_id, refused.state)
    except Exception as exc:
        log.exception("job %s failed", job_id)
        reporter.finish(FAILURE, error=f"{type(exc).__name__}: {exc}", message="failed")
    else:
        reporter.finish(SUCCESS, result=result, message="done")
