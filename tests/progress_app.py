"""A Celery app whose tasks use ``notifier.celery.ProgressTask`` the way existing apps report:
``update_state`` with well-formed and odd metas. Run by a real prefork worker in
tests/test_progress_task.py (``celery -A progress_app worker``, with tests/ on PYTHONPATH)."""

import os

import redis
from celery import Celery

from notifier.celery import ProgressTask

URL = os.environ["REDIS_URL"]

app = Celery("progress_app", broker=URL, backend=URL, task_cls=ProgressTask)
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])


@app.task(bind=True)
def odd_reports(self):
    """Every kind of meta an app may send, well-formed or not; then a result."""
    self.update_state(state="PROGRESS", meta="not a dict")
    self.update_state(state="PROGRESS", meta={"current": "3", "total": 10, "status": "current is text"})
    self.update_state(state="PROGRESS", meta={"current": 1, "total": float("nan"), "message": "nan total"})
    self.update_state(state="UPLOADING", meta={"status": "to the archive"})
    self.update_state(state="CHECKING")
    self.update_state(state="PROGRESS",
                      meta={"pending": False, "current": 2, "total": 4, "percent": 50, "description": "half"})
    return {"ok": True}


@app.task(bind=True)
def wait_for_key(self, key):
    """Reports once, then waits until the test pushes ``key``: a run paused mid-way."""
    self.update_state(state="PROGRESS", meta={"current": 1, "total": 2, "status": "waiting"})
    redis.Redis.from_url(URL).blpop([key], timeout=60)
    return {"waited": key}


@app.task(bind=True)
def returns_a_set(self):
    """A result the job store cannot keep."""
    return {1, 2, 3}


@app.task(bind=True)
def echo(self, **kwargs):
    """Reports its kwargs' count through the reporter (the notifier's own API) and returns."""
    for _ in self.reporter.steps(2):
        pass
    self.reporter.log(f"{len(kwargs)} kwargs")
    return len(kwargs)


@app.task(bind=True, max_retries=2)
def flaky_once(self):
    """Fails its first run and asks Celery to run it again."""
    if self.request.retries == 0:
        raise self.retry(countdown=0, exc=ConnectionError("the service was busy"))
    self.update_state(state="PROGRESS", meta={"current": 1, "total": 1, "status": "second try"})
    return {"retries": self.request.retries}
