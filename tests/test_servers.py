"""Every way the README serves the web process beyond gunicorn's eventlet, gevent and gthread
workers (tests/test_e2e.py): ``flask --app webapp run``, ``python -m webapp``, uWSGI with gevent
and gunicorn's GeventWebSocketWorker, each run for real, with nothing set but what the README
says, beside a real prefork Celery worker. The last two need packages the main venv must not
have, so they run from venvs of their own under test-artifacts/venvs (built once, then reused).
"""

import os
import re
import shutil
import tempfile
import time

import pytest
import redis
import requests

from clients import Watcher, submit
from conftest import ARTIFACTS, REDIS_BASE
from processes import (BIN, ROOT, WEB_SERVERS, process_env, server_venv, start_flask_run, start_gunicorn_in,
                       start_python_m, start_uwsgi, start_worker, wait_for)

pytestmark = pytest.mark.e2e

REDIS_DB_SERVERS = 5
VENVS = os.path.join(ARTIFACTS, "venvs")
GEVENT_WEBSOCKET = "gevent-websocket>=0.10.1,<0.11"


@pytest.fixture(scope="module")
def env(log_dir):
    """The environment of every process here (no SOCKETIO_ASYNC_MODE), and a worker serving it."""
    url = f"{REDIS_BASE}/{REDIS_DB_SERVERS}"
    redis.Redis.from_url(url).flushdb()
    environment = process_env(url, HEARTBEAT_INTERVAL=1)
    worker = start_worker(environment, log_dir)
    yield environment
    worker.stop()


@pytest.fixture
def serving():
    """Stops the server a test started, pass or fail."""
    started = []
    yield started.append
    for proc in started:
        proc.stop()


def assert_serves_jobs_live(url, *, upgrade=True):
    """A browser's whole visit: the page, a Socket.IO connection (long-polling first, then, with
    ``upgrade``, a websocket), a subscription, a job followed to its end, a heartbeat."""
    page = requests.get(url + "/", timeout=5)
    assert page.status_code == 200 and "socket.io.min.js" in page.text
    watcher = Watcher(url, transports=("polling", "websocket")).connect()
    try:
        if upgrade:
            wait_for(lambda: watcher.sio.transport() == "websocket", 10, message="the websocket upgrade")
        job = submit(url, "sleep", steps=3, interval=0.05)
        ack = watcher.subscribe(job["job_id"], last_seq=-1)
        assert ack["ok"], ack
        final = watcher.wait_finished(job["job_id"])
        assert final["state"] == "SUCCESS"
        assert watcher.unique_seqs(job["job_id"]) == list(range(final["seq"] + 1))
        wait_for(watcher.heartbeats, 5, message="a heartbeat")
        if upgrade:
            assert watcher.sio.transport() == "websocket"
    finally:
        watcher.close()


def websocket_only_client_follows_a_job(url):
    """A client that may only use a websocket (no long-polling to fall back on) follows a job."""
    direct = Watcher(url, transports=("websocket",)).connect()
    try:
        assert direct.sio.transport() == "websocket"
        job = submit(url, "sleep", steps=2, interval=0.05)
        assert direct.subscribe(job["job_id"], last_seq=-1)["ok"]
        assert direct.wait_finished(job["job_id"])["state"] == "SUCCESS"
    finally:
        direct.close()


# ---- gunicorn's workers, with no SOCKETIO_ASYNC_MODE ---------------------------------------------

@pytest.mark.parametrize("server", sorted(WEB_SERVERS))
def test_each_gunicorn_worker_gets_the_async_mode_that_fits_it_unasked(env, log_dir, serving, server):
    web = start_gunicorn_in(os.path.dirname(BIN), env, log_dir, *WEB_SERVERS[server])
    serving(web)
    assert_serves_jobs_live(web.url)


# ---- Flask's development server ------------------------------------------------------------------

def test_flask_run_serves_the_page_socketio_over_a_websocket_and_live_jobs(env, log_dir, serving):
    web = start_flask_run(env, log_dir)
    serving(web)
    assert_serves_jobs_live(web.url)
    assert " 401 " not in web.output()


@pytest.fixture
def checkout_copy():
    """A copy of what the web process runs from, to change while a ``--debug`` server watches it."""
    copy = tempfile.mkdtemp(prefix="checkout-", dir=ARTIFACTS)
    for name in ("webapp", "notifier", "tasks", "templates"):
        shutil.copytree(os.path.join(ROOT, name), os.path.join(copy, name),
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.join(ROOT, "celeryconfig.py"), copy)
    yield copy
    shutil.rmtree(copy, ignore_errors=True)


def _edit(path, old, new):
    """Replace ``old`` with ``new`` in a file and move its modification time on, so any watcher
    sees the change."""
    with open(path) as f:
        text = f.read()
    assert old in text
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))
    later = time.time() + 2
    os.utime(path, (later, later))


@pytest.mark.parametrize("start", [start_flask_run, start_python_m], ids=["flask-run", "python-m"])
def test_debug_reloads_templates_and_code(env, log_dir, serving, checkout_copy, start):
    web = start(env, log_dir, "--debug", app_dir=checkout_copy)
    serving(web)

    _edit(os.path.join(checkout_copy, "templates", "index.html"), "{% block main %}",
          "{% block main %}<!-- edited template -->")
    wait_for(lambda: "edited template" in requests.get(web.url + "/", timeout=5).text, 15,
             message="the edited template served")

    def serving_pid():
        try:
            return requests.get(web.url + "/healthz", timeout=1).json()["server"]
        except (requests.RequestException, ValueError):
            return None

    before = serving_pid()
    _edit(os.path.join(checkout_copy, "webapp", "pages.py"), '"""', '"""Edited. ')
    wait_for(lambda: serving_pid() not in (None, before), 30, 0.2, message="the server reloaded")
    assert_serves_jobs_live(web.url)


# ---- socketio.run ----------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", [None, "eventlet"], ids=["default", "eventlet"])
def test_python_m_webapp_serves_with_socketio_run(env, log_dir, serving, mode):
    environment = dict(env, SOCKETIO_ASYNC_MODE=mode) if mode else env
    web = start_python_m(environment, log_dir, "--log-output")
    serving(web)
    assert_serves_jobs_live(web.url)
    websocket_only_client_follows_a_job(web.url)
    # --log-output reached the server: it logged the requests.
    assert re.search(r"GET /healthz", web.output())


# ---- uWSGI with gevent ------------------------------------------------------------------------------

@pytest.mark.timeout(900)  # the first run builds its venv, compiling uWSGI (a few minutes)
def test_uwsgi_with_gevent_serves_websockets_and_live_jobs(env, log_dir, serving):
    venv = server_venv(os.path.join(VENVS, "uwsgi"), extra="app,uwsgi")
    web = start_uwsgi(venv, env, log_dir)
    serving(web)
    assert_serves_jobs_live(web.url)
    websocket_only_client_follows_a_job(web.url)


# ---- gunicorn's GeventWebSocketWorker ---------------------------------------------------------------

@pytest.mark.timeout(600)  # the first run builds its venv
def test_gunicorn_geventwebsocket_worker_serves_websockets_and_live_jobs(env, log_dir, serving):
    venv = server_venv(os.path.join(VENVS, "gevent-websocket"), GEVENT_WEBSOCKET, extra="app")
    web = start_gunicorn_in(venv, env, log_dir,
                            "-k", "geventwebsocket.gunicorn.workers.GeventWebSocketWorker")
    serving(web)
    assert_serves_jobs_live(web.url)
    websocket_only_client_follows_a_job(web.url)


def test_the_main_environment_has_no_gevent_websocket():
    # With it installed, engine.io picks it and plain `gunicorn -k gevent` answers websockets 500.
    with pytest.raises(ImportError):
        import geventwebsocket  # noqa: F401


def test_the_async_mode_is_left_to_the_server_unless_set():
    from notifier.settings import Settings

    assert Settings.from_env({}).async_mode is None
    assert Settings.from_env({"SOCKETIO_ASYNC_MODE": "gevent"}).async_mode == "gevent"
    with pytest.raises(ValueError, match="SOCKETIO_ASYNC_MODE"):
        Settings.from_env({"SOCKETIO_ASYNC_MODE": "tornado"})
