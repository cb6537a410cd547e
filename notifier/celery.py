"""``ProgressTask``: a Celery task base class whose every run is a notifier job.

    @celery.task(bind=True, base=ProgressTask)       # or Celery(..., task_cls=ProgressTask)
    def long_task(self, total):
        for i in range(total):
            self.update_state(state="PROGRESS", meta={"current": i + 1, "total": total})
        return {"result": 42}

The job is created before the message leaves (``apply_async``, ``delay``): job id = task id,
``kind`` = the task's name (or its ``kind`` attribute), ``params`` = its kwargs when they are JSON;
a task sent some other way (``send_task``) gets its job when it starts.
On the worker the run goes through ``notifier.reporter.run_job``: ``STARTED``, progress, exactly
one final event. ``update_state`` is a progress event and still reaches the result backend;
``self.reporter`` is the job's ProgressReporter. A ``revoke(id, terminate=True)`` is recorded in
the worker's main process, which Celery tells (``task_revoked``) once it has killed the child.
"""

import json
import logging
import math

from celery import Task, signals
from flask import current_app, has_app_context
from kombu.utils.uuid import uuid

from notifier import access, events, reporter as reporting
from notifier.store import PENDING, REVOKED, RUNNING_STATES, JobNotFound, JobRefused, is_job_id

log = logging.getLogger(__name__)

MESSAGE_KEYS = ("status", "description", "message")  # Celery's example, celery-progress, plain


def _as_json(value, default):
    """``value`` if it survives JSON (strict: no NaN), else ``default``."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return default
    return value


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def progress_from_meta(state, meta):
    """``(current, total, message)`` read from ``update_state``'s arguments, as well as they read:
    numbers only when they are numbers, a custom state's name in the message."""
    meta = meta if isinstance(meta, dict) else {}
    message = next((meta[key] for key in MESSAGE_KEYS if isinstance(meta.get(key), str)), None)
    current, total = meta.get("current"), meta.get("total")
    if not _number(current) or not (total is None or _number(total)):
        current = total = None
    if state not in (None, "PROGRESS"):
        message = f"{state}: {message}" if message else str(state)
    return current, total, message


def _producer_store():
    """Where jobs are created: the current Flask app's notifier store inside a request of an app
    that has one, else this process's store from the environment."""
    if has_app_context() and "notifier" in current_app.extensions:
        return current_app.extensions["notifier"].store
    return reporting.producer_store()


class _Untracked:
    """``self.reporter`` of a run that is not a job (called directly): reports go nowhere."""

    def steps(self, total, message=None):
        return iter(range(1, total + 1))

    def progress(self, current=None, total=None, message=None):
        pass

    def log(self, message):
        pass


class ProgressTask(Task):
    """A task whose runs are notifier jobs: see the module's docstring."""

    kind = None  # the job's kind; None: the task's name

    def apply_async(self, args=None, kwargs=None, task_id=None, producer=None, link=None,
                    link_error=None, shadow=None, **options):
        """Create the job (PENDING, seq 0), then send the task; the result's ``.job`` is the
        job's first snapshot and ``.cancel_token`` the token that lets its holder cancel it (the
        store keeps only its hash). If the broker refuses the message, the job is removed again."""
        def send(task_id):
            return super(ProgressTask, self).apply_async(args, kwargs, task_id, producer, link,
                                                         link_error, shadow, **options)

        if task_id is not None and task_id == self.request.id:
            return send(task_id)  # a retry of the running task: its job goes on
        task_id = task_id or uuid()
        if not is_job_id(task_id):
            log.warning("task %s has id %r, not a UUID4: it is not tracked", self.name, task_id)
            return send(task_id)
        store = _producer_store()
        token, internal = access.issue()
        job = store.create(self.kind or self.name, _as_json(dict(kwargs or {}), {}),
                           internal=internal, job_id=task_id)
        try:
            result = send(task_id)
        except BaseException:
            store.delete(task_id)
            raise
        result.job, result.cancel_token = job, token
        return result

    def __call__(self, *args, **kwargs):
        request = self.request
        if request.called_directly or not is_job_id(request.id):
            return super().__call__(*args, **kwargs)
        self._ensure_job(request.id, kwargs)

        def body(reporter):
            request.notifier_reporter = reporter
            return super(ProgressTask, self).__call__(*args, **kwargs)

        return reporting.run_job(request.id, body)

    def _ensure_job(self, job_id, kwargs):
        """A task sent without ``apply_async`` (``send_task``, a scheduler, another service) has
        no job yet: it is created as the run starts, so the run is tracked all the same."""
        store = reporting.worker_runtime()[1]
        if store.get_field(job_id, "state") is None:
            store.create(self.kind or self.name, _as_json(dict(kwargs), {}), job_id=job_id)

    @property
    def reporter(self):
        """This run's ProgressReporter (``steps``, ``progress``, ``log``); a stand-in that
        reports nowhere when the task is called directly."""
        return getattr(self.request, "notifier_reporter", None) or _Untracked()

    def update_state(self, task_id=None, state=None, meta=None, **kwargs):
        """A progress event for the job (a cancel requested meanwhile raises here), then
        Celery's own update, so the result backend sees it too."""
        reporter = getattr(self.request, "notifier_reporter", None)
        if reporter is not None and task_id in (None, self.request.id):
            current, total, message = progress_from_meta(state, meta)
            reporter.progress(current, total, message)
        return super().update_state(task_id, state, meta, **kwargs)


@signals.task_revoked.connect
def _record_revoke(sender=None, request=None, terminated=False, **_):
    """Celery revoked a tracked task: a queued one never runs, a running one was killed
    (``terminate=True``). Either way the job ends REVOKED, not LOST."""
    if not isinstance(sender, ProgressTask) or request is None or not is_job_id(request.id):
        return
    settings, store = reporting.worker_runtime()
    try:
        events.record(store, reporting.worker_emitter, request.id, only_from=(PENDING, *RUNNING_STATES),
                      state=REVOKED, message="terminated" if terminated else "revoked")
    except (JobRefused, JobNotFound):
        pass  # already final (its own run recorded it), or not a job of this store
    except Exception:
        log.exception("could not record that task %s was revoked", request.id)

