"""The example existing app (``examples/flask_celery_app``), installed the way a user installs the
notifier: the checkout installed (not editable) into a venv of its own beside ``gunicorn>=26`` and
``gevent``, served by gunicorn's plain gevent worker, with a prefork Celery worker; driven end to
end over HTTP, Socket.IO and in Chromium.

The venv is made once per version of the library (a hash of what goes into the package) under
test-artifacts/ and reused: a cold run installs it (about a minute), a warm one does not.
"""

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys

import pytest
import redis
import requests
from celery import Celery
from playwright.sync_api import expect

from clients import Watcher
from processes import ROOT, Process, free_port, process_env, wait_for

pytestmark = [pytest.mark.e2e]

EXAMPLE = os.path.join(ROOT, "examples", "flask_celery_app")
PACKAGED = ("pyproject.toml", "setup.py", "package-lock.json", "notifier", "jobclient")
REDIS_DB_EXAMPLE = 4

expect.set_options(timeout=20_000)


def _library_hash():
    digest = hashlib.sha256()
    for entry in PACKAGED:
        path = os.path.join(ROOT, entry)
        files = [path] if os.path.isfile(path) else sorted(
            os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
            if "__pycache__" not in folder and not name.endswith(".pyc") and "vendor" not in folder)
        for name in files:
            digest.update(os.path.relpath(name, ROOT).encode())
            with open(name, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="module")
def user_venv():
    """A venv with the checkout installed as a user would: ``pip install <checkout>`` beside
    gunicorn 26 and gevent. Reused while the library is unchanged."""
    venv = os.path.join(ROOT, "test-artifacts", f"example-venv-{_library_hash()}")
    ready = os.path.join(venv, ".ready")
    if not os.path.exists(ready):
        for old in glob.glob(os.path.join(ROOT, "test-artifacts", "example-venv-*")):
            shutil.rmtree(old, ignore_errors=True)  # an older library's: never used again
        subprocess.run([sys.executable, "-m", "venv", "--clear", venv], check=True)
        subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "--quiet",
                        ROOT, "gunicorn>=26", "gevent"], check=True, cwd=EXAMPLE)
        open(ready, "w").close()
    return os.path.join(venv, "bin")


@pytest.fixture(scope="module")
def example(user_venv, log_dir, redis_server):
    """gunicorn (plain gevent worker) + a prefork celery worker, both from the user's venv, run
    from the example's folder; yields the site's URL and its Redis."""
    from conftest import REDIS_BASE

    url = f"{REDIS_BASE}/{REDIS_DB_EXAMPLE}"
    client = redis.Redis.from_url(url, decode_responses=True)
    client.flushdb()
    # No SOCKETIO_ASYNC_MODE: the notifier picks the mode of the server it runs under.
    env = process_env(url, HEARTBEAT_INTERVAL=1, PATH=user_venv + os.pathsep + os.environ["PATH"])
    env.pop("PYTHONPATH", None)
    port = free_port()
    web = Process("example-web", [os.path.join(user_venv, "gunicorn"), "-k", "gevent", "-w", "1",
                                  "--bind", f"127.0.0.1:{port}", "--no-control-socket", "app:app"],
                  env, log_dir, cwd=EXAMPLE).start()
    worker = Process("example-worker", [os.path.join(user_venv, "celery"), "-A", "app.celery",
                                        "worker", "--pool=prefork", "--concurrency=2",
                                        "--loglevel=INFO", "-n", f"example{port}@%h",
                                        "--without-gossip", "--without-mingle"],
                     env, log_dir, cwd=EXAMPLE).start()
    try:
        def up():
            assert web.alive(), web.output()
            try:
                return requests.get(f"http://127.0.0.1:{port}/status/x", timeout=1).ok
            except requests.RequestException:
                return False

        wait_for(up, 30, 0.1, message="the example's web process")
        wait_for(lambda: worker.alive() and " ready." in worker.output(), 60, 0.1,
                 message="the example's celery worker")
        yield type("Example", (), {"url": f"http://127.0.0.1:{port}", "redis": client,
                                   "web": web, "worker": worker, "broker": url})
    finally:
        worker.stop()
        web.stop()


def start(example, name, **kwargs):
    answer = requests.post(f"{example.url}/tasks/{name}", json=kwargs, timeout=10)
    assert answer.status_code == 202, answer.text
    return answer.json()


def job(example, task_id):
    return requests.get(f"{example.url}/progress/api/jobs/{task_id}", timeout=10)


def status(example, task_id):
    return requests.get(f"{example.url}/status/{task_id}", timeout=10).json()


def test_the_user_venv_has_only_the_library_and_gunicorn_26(user_venv):
    python = os.path.join(user_venv, "python")
    found = subprocess.run(
        [python, "-c", "import importlib.util as u, gunicorn; print(gunicorn.__version__); "
                       "print([m for m in ('notifier', 'notifier.flask', 'notifier.celery', "
                       "'jobclient', 'webapp', 'tasks', 'celeryconfig', 'eventlet') if u.find_spec(m)])"],
        capture_output=True, text=True, check=True, cwd="/").stdout.splitlines()
    assert int(found[0].split(".")[0]) >= 26
    assert found[1] == "['notifier', 'notifier.flask', 'notifier.celery', 'jobclient']"
    vendored = subprocess.run([python, "-c", "import notifier.flask, os; print(os.path.dirname("
                               "notifier.flask.__file__))"], capture_output=True, text=True,
                              check=True, cwd="/").stdout.strip()
    assert os.path.getsize(os.path.join(vendored, "static", "vendor", "socket.io.min.js")) > 10_000


def test_importing_the_app_starts_no_thread_and_opens_no_connection(user_venv, tmp_path):
    """What a Celery worker does first: import the app's module. A listening socket stands in for
    Redis, so any connection would be seen."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        env = dict(os.environ, REDIS_URL=f"redis://127.0.0.1:{listener.getsockname()[1]}/0")
        threads = subprocess.run(
            [os.path.join(user_venv, "python"), "-c",
             "import threading, app; print(threading.active_count())"],
            capture_output=True, text=True, check=True, cwd=EXAMPLE, env=env).stdout.strip()
        assert threads == "1"
        with pytest.raises(BlockingIOError):
            listener.accept()


def test_a_tracked_task_streams_live_and_polling_still_works(example):
    task = start(example, "long", total=30, interval=0.1)
    task_id = task["task_id"]
    assert task["live"] == f"/progress/jobs/{task_id}"
    first = job(example, task_id).json()  # there once apply_async returned
    assert first["job_id"] == task_id and first["kind"] == "app.long_task"
    assert first["params"] == {"total": 30, "interval": 0.1}
    watcher = Watcher(example.url).connect()
    try:
        assert watcher.subscribe(task_id, last_seq=-1)["ok"]
        # The app's own polling still sees Celery's PROGRESS and its meta (the result backend).
        seen = wait_for(lambda: (s := status(example, task_id))["state"] == "PROGRESS" and s, 30,
                        message="PROGRESS in AsyncResult")
        assert seen["info"]["total"] == 30 and seen["info"]["status"].startswith("item ")
        final = watcher.wait_finished(task_id, 60)
        assert final["state"] == "SUCCESS" and final["result"]["result"] == 42
        seqs = watcher.unique_seqs(task_id)
        assert seqs == list(range(final["seq"] + 1))
        progress = [data for name, data in watcher.job_events(task_id) if data["state"] == "PROGRESS"]
        assert progress and all(p["total"] == 30 and p["message"].startswith("item ") for p in progress)
        assert progress[-1]["current"] <= 30
        assert wait_for(lambda: heartbeat(watcher), 10, message="a heartbeat")["active_jobs"] >= 0
    finally:
        watcher.close()
    assert status(example, task_id)["state"] == "SUCCESS"


def heartbeat(watcher):
    beats = watcher.heartbeats()
    return beats[-1] if beats else None


def test_a_failing_task_is_a_failure_live_and_in_celerys_log(example):
    task_id = start(example, "flaky", fail_at=2)["task_id"]
    final = wait_for(lambda: (j := job(example, task_id).json())["finished_at"] and j, 30,
                     message="the flaky task to end")
    assert final["state"] == "FAILURE" and final["error"] == "ValueError: item 2 is broken"
    assert status(example, task_id)["state"] == "FAILURE"
    wait_for(lambda: re.search(rf"Task app.flaky_task\[{task_id}\] raised unexpected: ValueError",
                               example.worker.output()), 10, message="the failure in celery's log")


def test_celerys_revoke_with_terminate_ends_the_job_revoked_and_it_never_runs_again(example):
    task_id = start(example, "long", total=600, interval=0.1)["task_id"]
    wait_for(lambda: job(example, task_id).json()["state"] == "PROGRESS", 30, message="running")
    Celery(broker=example.broker).control.revoke(task_id, terminate=True)
    final = wait_for(lambda: (j := job(example, task_id).json())["finished_at"] and j, 30,
                     message="the revoked job to end")
    assert final["state"] == "REVOKED" and final["message"] == "terminated"
    assert status(example, task_id)["state"] == "REVOKED"
    # A task sent after it runs to its end, and the revoked one is still as it was: not re-run.
    later = start(example, "long", total=2, interval=0)["task_id"]
    wait_for(lambda: job(example, later).json()["state"] == "SUCCESS", 30, message="a later task")
    again = job(example, task_id).json()
    assert again["state"] == "REVOKED" and again["seq"] == final["seq"]
    assert example.redis.hget(f"notifier:job:{task_id}", "attempts") == "1"


def test_the_notifiers_cancel_stops_the_task_at_its_next_report(example):
    task = start(example, "long", total=600, interval=0.05)
    task_id = task["task_id"]
    wait_for(lambda: job(example, task_id).json()["state"] == "PROGRESS", 30, message="running")
    cancel = f"{example.url}/progress/api/jobs/{task_id}/cancel"
    assert requests.post(cancel, timeout=10).status_code == 403  # the id alone only watches
    answer = requests.post(cancel, headers={"Authorization": f"Bearer {task['cancel_token']}"},
                           timeout=10)
    assert answer.status_code == 202
    final = wait_for(lambda: (j := job(example, task_id).json())["finished_at"] and j, 30,
                     message="the cancelled job to end")
    assert final["state"] == "REVOKED" and final["current"] < 600
    wait_for(lambda: status(example, task_id)["state"] == "REVOKED", 10, message="Celery's REVOKED")


def test_an_untracked_task_writes_nothing(example):
    before = set(example.redis.keys("notifier:job:*"))
    task_id = start(example, "cleanup")["task_id"]
    wait_for(lambda: status(example, task_id)["state"] == "SUCCESS", 30, message="cleanup to run")
    assert job(example, task_id).status_code == 404
    assert set(example.redis.keys("notifier:job:*")) == before


@pytest.mark.browser
def test_the_job_page_under_the_prefix_follows_a_task_in_chromium(example, page):
    problems = []
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    task_id = start(example, "long", total=40, interval=0.2)["task_id"]
    page.goto(f"{example.url}/progress/jobs/{task_id}")
    expect(page.locator("#state")).to_have_text("PROGRESS")
    expect(page.locator("#connection")).to_have_attribute("data-state", "connected")
    expect(page.locator("#state")).to_have_text("SUCCESS")
    expect(page.locator("#percent")).to_have_text("100%")
    expect(page.locator("#result")).to_contain_text("Task completed!")
    expect(page.locator("#log li").first).to_contain_text("queued")
    assert problems == []
