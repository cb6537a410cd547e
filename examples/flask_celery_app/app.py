"""An existing Flask + Celery app, written the way Flask's Celery pattern writes one: tasks report
with ``self.update_state`` and a page polls ``AsyncResult`` for it.

Live progress is added by the lines marked ``# notifier``: two imports, ``JobNotifier(...)`` and
``base=ProgressTask``. Each tracked task then has a live page at ``/progress/jobs/<task id>``,
streams over Socket.IO (namespace ``/jobs``) to any client, and can be cancelled; ``AsyncResult``
keeps working as before, and ``cleanup`` (no base class) is left alone.

    gunicorn -k gevent -w 1 app:app          # the web app (any server Flask-SocketIO supports)
    celery -A app.celery worker              # the worker
"""

import os
import time

from celery import Celery
from flask import Flask, jsonify, request, url_for

from notifier.celery import ProgressTask  # notifier
from notifier.flask import JobNotifier  # notifier

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

app = Flask(__name__)
celery = Celery(__name__, broker=REDIS_URL, backend=REDIS_URL)
celery.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])

notifier = JobNotifier(app, url_prefix="/progress")  # notifier


@celery.task(bind=True, base=ProgressTask)  # notifier: base=ProgressTask
def long_task(self, total=10, interval=0.5):
    """Works through ``total`` items, saying how far it is after each."""
    for i in range(total):
        time.sleep(interval)
        self.update_state(state="PROGRESS",
                          meta={"current": i + 1, "total": total, "status": f"item {i + 1} of {total}"})
    return {"current": total, "total": total, "status": "Task completed!", "result": 42}


@celery.task(bind=True, base=ProgressTask)  # notifier: base=ProgressTask
def flaky_task(self, fail_at=2, total=5):
    """Fails part of the way through, as real work sometimes does."""
    for i in range(total):
        if i + 1 == fail_at:
            raise ValueError(f"item {i + 1} is broken")
        self.update_state(state="PROGRESS", meta={"current": i + 1, "total": total})
    return {"done": total}


@celery.task
def cleanup():
    """Housekeeping nobody watches: no base class, so the notifier records nothing for it."""
    return "cleaned"


TASKS = {"long": long_task, "flaky": flaky_task, "cleanup": cleanup}


@app.post("/tasks/<name>")
def start(name):
    """Start a task with the JSON body as its kwargs; where to poll it, and where to watch it live."""
    task = TASKS[name].apply_async(kwargs=request.get_json(silent=True) or {})
    links = {"status": url_for("status", task_id=task.id)}
    if name != "cleanup":  # notifier: where to watch it, and the token that lets its caller cancel it
        links.update(live=url_for("notifier.job_page", job_id=task.id), cancel_token=task.cancel_token)
    return jsonify(task_id=task.id, **links), 202


@app.get("/status/<task_id>")
def status(task_id):
    """The app's own polling endpoint, as it was before the notifier: Celery's state and meta."""
    result = celery.AsyncResult(task_id)
    info = result.info
    return jsonify(state=result.state, info=info if isinstance(info, (dict, str, type(None))) else str(info))
