"""The progress reporter: how a running job tells the world about itself.

Each worker process owns one job store and one write-only ``SocketIO(message_queue=...)``, made
on first use and reused. Every change goes through ``notifier.events.record``: written to the
store (which numbers it with ``seq`` and keeps it for replay), then published to the job's room
through that emitter, on Redis as on RabbitMQ. Progress closer together than
``PROGRESS_MIN_INTERVAL`` is coalesced, and the newest value still goes out within that interval:
the keep-alive thread sends it if the job calls nothing meanwhile. That thread also shows the job
is alive during long steps and notices a cancel request. The final event is sent from one place:
``run_job``. Every change after STARTED is fenced by the runner id written with it: once another
delivery of the job has taken it over (see ``LEASE``), the store refuses this runner's writes.
"""

import functools
import logging
import threading
import time
import uuid

from celery import current_task
from celery.exceptions import Ignore, Retry
from flask_socketio import SocketIO

from notifier import events
from notifier.settings import Settings
from notifier.store import (FAILURE, PENDING, PROGRESS, REVOKED, RUNNING_STATES, STARTED,
                            SUCCESS, JobNotFound, JobRefused, JobStore, NotStorable)

log = logging.getLogger(__name__)

KEEPALIVE_INTERVAL = 1.0
# A running job whose runner has shown no life for this long is taken over by a new delivery.
LEASE = 5 * KEEPALIVE_INTERVAL


class JobCancelled(Exception):
    """Raised inside a job at its next step after someone asked to cancel it."""


@functools.cache
def worker_runtime():
    """This process's settings and job store (made after the worker forks, then reused)."""
    settings = Settings.from_env()
    return settings, JobStore.from_settings(settings, patient=True)


@functools.cache
def producer_store():
    """The job store of a process that sends tracked tasks (``ProgressTask.apply_async``) outside
    a Flask app: impatient, so a submission fails fast while Redis is away."""
    return JobStore.from_settings(Settings.from_env())


@functools.cache
def worker_emitter():
    """This process's write-only emitter: every job event leaves the worker through it."""
    # async_mode is explicit: left alone it picks eventlet whenever eventlet is installed.
    return SocketIO(message_queue=worker_runtime()[0].message_queue, async_mode="threading")


class ProgressReporter:
    """Publishes one job's events; a job kind only calls ``steps``, ``progress`` and ``log``."""

    def __init__(self, job_id, store, emitter, min_interval=0.1):
        self.job_id = job_id
        self.runner = uuid.uuid4().hex  # this run of the job, written on STARTED
        self.store = store
        self.emitter = emitter
        self.min_interval = min_interval
        self.cancelled = threading.Event()
        self._lock = threading.Lock()  # the job's thread and the keep-alive thread take turns
        self._stop = threading.Event()
        self._wake = threading.Event()  # a throttled value is waiting for the keep-alive thread
        self._keeper = None  # the keep-alive thread, once the job has started
        self._last_publish = float("-inf")
        self._pending = None  # the newest throttled-away progress, sent before anything else

    def _publish(self, held=True, **changes):
        """Record and publish one event (the caller holds the lock); ``held``: only while this
        runner holds the job (every change but the one that starts it)."""
        self._last_publish = time.monotonic()  # before the write: its time is not the job's
        self._pending = None
        events.record(self.store, self.emitter, self.job_id,
                      held_by=self.runner if held else None, **changes)

    def _flush(self):
        if self._pending:
            self._publish(**self._pending)

    def progress(self, current, total=None, message=None):
        """Report how far the job is (``current`` None: only a message); raises JobCancelled if a
        cancel was requested while work remains (once ``current`` reaches ``total`` the work is
        done, and its result wins)."""
        done = total is not None and current is not None and current >= total
        if self.cancelled.is_set() and not done:
            raise JobCancelled()
        changes = {"state": PROGRESS}
        if current is not None:
            changes["current"] = current
        if total is not None:
            changes["total"] = total
        if message is not None:
            changes["message"] = message
        with self._lock:
            if done or time.monotonic() - self._last_publish >= self.min_interval:
                self._publish(**changes)
                return
            first, self._pending = self._pending is None, changes
        if first:  # the keep-alive thread learns its deadline once; newer values just replace it
            self._wake.set()

    def log(self, message):
        """Publish a message without changing the job's progress (never coalesced)."""
        with self._lock:
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
        """Until the job ends: send a throttled value when it is due, and every second show the
        job is alive and look for a cancel request."""
        next_touch = time.monotonic() + KEEPALIVE_INTERVAL
        while not self._stop.is_set():
            now = time.monotonic()
            due = self._last_publish + self.min_interval if self._pending else next_touch
            self._wake.wait(max(0.0, min(due, next_touch) - now))
            self._wake.clear()
            try:
                with self._lock:
                    if self._pending and not self._stop.is_set() and \
                            time.monotonic() >= self._last_publish + self.min_interval:
                        self._flush()
                if time.monotonic() >= next_touch:
                    next_touch = time.monotonic() + KEEPALIVE_INTERVAL
                    if self.store.touch(self.job_id, held_by=self.runner):
                        self.cancelled.set()
            except (JobRefused, JobNotFound):
                return  # ended or taken over elsewhere: the job's own next call finds out too
            except Exception:  # a passing Redis error must not kill the job; try again next beat
                log.warning("keep-alive for job %s failed", self.job_id, exc_info=True)

    def start(self):
        """Mark the job STARTED; False if it must not run (final, or alive on another worker)."""
        deadline = time.monotonic() + LEASE + KEEPALIVE_INTERVAL
        while True:
            try:
                attempts = (self.store.get_field(self.job_id, "attempts") or 0) + 1
                message = "started" if attempts == 1 else f"restarted (attempt {attempts})"
                with self._lock:
                    self._publish(held=False,
                                  only_from=(PENDING,) if attempts == 1 else (PENDING, *RUNNING_STATES),
                                  stale_for=None if attempts == 1 else LEASE,
                                  state=STARTED, attempts=attempts, runner=self.runner, message=message)
                break
            except JobNotFound:
                log.warning("job %s is unknown (expired?): not running it", self.job_id)
                return False
            except JobRefused as refused:
                # Running elsewhere, or delivered again after its worker died: wait out the lease.
                if refused.state not in RUNNING_STATES or time.monotonic() > deadline:
                    log.info("job %s is %s: not running it again", self.job_id, refused.state)
                    if refused.state == REVOKED:
                        raise _revoked() from None
                    return False
                time.sleep(KEEPALIVE_INTERVAL)
        self._keeper = threading.Thread(target=self._keep_alive, daemon=True,
                                        name=f"keepalive-{self.job_id[:8]}")
        self._keeper.start()
        return True

    def stop(self):
        """End the keep-alive thread (on every way out of a job) and wait for it: once the job's
        task returns, nothing of its run touches the job any more."""
        self._stop.set()
        self._wake.set()
        if self._keeper and self._keeper is not threading.current_thread():
            self._keeper.join(KEEPALIVE_INTERVAL)

    def requeue(self, message):
        """The job waits for another run (Celery retries its task): PENDING again, not running."""
        self.stop()
        with self._lock:
            self._flush()
            self._publish(only_from=RUNNING_STATES, state=PENDING, message=message)

    def finish(self, state, *, result=None, error=None, message):
        """Publish the final event (the store refuses any later change), which closes the room."""
        self.stop()
        with self._lock:
            self._flush()
            self._publish(state=state, result=result, error=error, message=message)


def _revoked():
    """What a cancelled job's task raises, so Celery (and Flower) see it revoked, not succeeded."""
    task = current_task
    if task and task.request.id:
        task.send_event("task-revoked", terminated=False, signum=None, expired=False)
        task.backend.mark_as_revoked(task.request.id, "cancelled", request=task.request)
    return Ignore()


def run_job(job_id, body):
    """Run ``body(reporter)`` as job ``job_id``, publishing STARTED and exactly one final event.

    The store is written first; then the task ends as Celery should see it: failed when the job
    failed (the exception is raised again), revoked when it was cancelled, ignored when the job
    was ended or taken over elsewhere meanwhile.
    """
    settings, store = worker_runtime()
    reporter = ProgressReporter(job_id, store, worker_emitter, settings.progress_min_interval)
    if not reporter.start():
        return None
    try:
        return _outcome(reporter, body)
    except JobRefused as refused:
        # Declared LOST, say, or re-run by another delivery: its events are not this run's to send.
        log.warning("job %s was ended or taken over elsewhere (%s); dropping this run's events",
                    job_id, refused.state)
        raise Ignore() from None
    finally:
        reporter.stop()


def _outcome(reporter, body):
    """Run the body and publish how it ended; returns its result or raises as Celery should see."""
    try:
        result = body(reporter)
    except JobCancelled:
        reporter.finish(REVOKED, message="cancelled")
        raise _revoked() from None
    except Retry as retry:
        # Celery runs the task again later (self.retry, autoretry_for): the job waits for that run.
        reporter.requeue(f"retrying {retry.humanize()}")
        raise
    except JobRefused:
        raise
    except Exception as exc:
        reporter.finish(FAILURE, error=f"{type(exc).__name__}: {exc}", message="failed")
        raise
    try:
        reporter.finish(SUCCESS, result=result, message="done")
    except NotStorable as exc:  # nothing was written: the job fails, saying why
        reporter.finish(FAILURE, error=str(exc), message="failed")
        raise
    return result
