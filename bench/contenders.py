"""The contenders: each starts its own Redis and server and says how to publish to it and watch it.

A contender owns: a private redis-server, its server process (``server_pid`` is what memory and
CPU are read from), the command of its publisher processes, and the kind of watcher that follows
a job on it (``socketio``, ``redis`` or ``poll``). All listen on 127.0.0.1 only.
"""

import os
import subprocess
import sys
import threading
import time

from . import procs

NODE_DIR = os.path.join(procs.ROOT, "bench", "node")
HEARTBEAT_CHANNEL = "bench:heartbeat"
BENCH_SUBMIT_RATE_LIMIT = "1000000 per minute"


def procfile_command(role):
    """The command line of ``role`` in the Procfile: the web process exactly as deployed."""
    with open(os.path.join(procs.ROOT, "Procfile")) as f:
        for line in f:
            name, _, command = line.partition(":")
            if name.strip() == role:
                return command.strip()
    raise LookupError(f"no {role!r} line in the Procfile")


def ensure_node_modules():
    """``npm ci`` the node contender's packages on first run (bench/node/node_modules, not committed)."""
    marker = os.path.join(NODE_DIR, "node_modules", ".package-lock.json")
    lock = os.path.join(NODE_DIR, "package-lock.json")
    if os.path.exists(marker) and os.path.getmtime(marker) >= os.path.getmtime(lock):
        return
    print("bench: installing the node contender's packages (npm ci in bench/node) ...", flush=True)
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                   check=True)


class Contender:
    name = "?"
    transport = "socketio"  # how watchers follow a job
    max_websockets = None  # None: as many as the machine allows
    limit_reason = None  # why, when max_websockets is set
    worker_path = False  # published by the notifier's own ProgressReporter

    def __init__(self, log_dir, heartbeat_interval):
        self.log_dir = log_dir
        self.heartbeat_interval = heartbeat_interval
        self.redis = self.server = None
        self.redis_url = self.url = None

    def start(self):
        self.redis, self.redis_url = procs.redis_server(self.log_dir)
        self.start_server()
        return self

    def start_server(self):
        raise NotImplementedError

    def restart_server(self):
        """A fresh server process (same Redis), so memory is measured from a clean start."""
        self.server.stop()
        self.start_server()

    def stop(self):
        if self.server is not None and self.server is not self.redis:
            self.server.stop()
        if self.redis is not None:
            self.redis.stop()

    @property
    def server_pid(self):
        return self.server.pid

    @property
    def watch_url(self):
        return self.url

    def publisher_argv(self):
        raise NotImplementedError

    def publisher_env(self):
        return dict(os.environ, REDIS_URL=self.redis_url)


class Notifier(Contender):
    """The real web process, served the documented way for its async mode, fed by the worker path."""

    worker_path = True
    COMMANDS = {
        "gevent": ["-k", "gevent", "--worker-connections", "10000", "-w", "1"],
        "threading": ["-k", "gthread", "--threads", "100", "-w", "1"],
    }

    def __init__(self, log_dir, heartbeat_interval, mode):
        super().__init__(log_dir, heartbeat_interval)
        self.mode = mode
        self.name = f"notifier_{mode}"
        if mode == "threading":
            self.max_websockets = 100
            self.limit_reason = ("gunicorn gthread --threads 100 gives each websocket a thread for "
                                 "its whole life: at most 100 at once (checked: the 101st waits "
                                 "unanswered)")

    def env(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "SOCKETIO_"))}
        env.update(REDIS_URL=self.redis_url, SECRET_KEY="bench", SOCKETIO_ASYNC_MODE=self.mode,
                   HEARTBEAT_INTERVAL=str(self.heartbeat_interval), JOB_STALL_TIMEOUT="3600",
                   SUBMIT_RATE_LIMIT=BENCH_SUBMIT_RATE_LIMIT, PROGRESS_MIN_INTERVAL="0",
                   PYTHONUNBUFFERED="1", PATH=procs.BIN + os.pathsep + os.environ.get("PATH", ""))
        return env

    def start_server(self):
        port = procs.free_port()
        env = dict(self.env(), PORT=str(port))
        if self.mode == "eventlet":
            argv = ["bash", "-c", procfile_command("web")]
        else:
            argv = [os.path.join(procs.BIN, "gunicorn"), *self.COMMANDS[self.mode],
                    "--no-control-socket", "--bind", f"127.0.0.1:{port}", "webapp:create_app()"]
        self.server = procs.Proc(f"{self.name}-web-{port}", argv, env, self.log_dir)
        self.url = f"http://127.0.0.1:{port}"
        procs.wait_http(self.url + "/healthz", self.server)

    @property
    def server_pid(self):
        """gunicorn's worker (the master only supervises it)."""
        workers = procs.children_of(self.server.pid)
        return workers[0] if workers else self.server.pid

    def publisher_argv(self):
        return [sys.executable, "-m", "bench.publisher", "notifier"]

    def publisher_env(self):
        return self.env()


class HttpPolling(Notifier):
    """The eventlet web process again, watched by GET /api/jobs/<id> every 500 ms."""

    transport = "poll"

    def __init__(self, log_dir, heartbeat_interval):
        super().__init__(log_dir, heartbeat_interval, "eventlet")
        self.name = "http_polling"


class NodeSocketIO(Contender):
    name = "node_socketio"

    def start_server(self):
        port = procs.free_port()
        env = dict(os.environ, PORT=str(port), REDIS_URL=self.redis_url,
                   HEARTBEAT_INTERVAL=str(self.heartbeat_interval))
        self.server = procs.Proc(f"{self.name}-server-{port}", ["node", "bench/node/server.js"],
                                 env, self.log_dir)
        self.url = f"http://127.0.0.1:{port}"
        procs.wait_http(self.url + "/socket.io/?EIO=4&transport=polling", self.server)

    def publisher_argv(self):
        return ["node", "bench/node/publisher.js"]


class RedisFloor(Contender):
    """No server but Redis: PUBLISH on the job's channel, asyncio subscribers watch it."""

    name = "redis_floor"
    transport = "redis"

    def start_server(self):
        self.server = self.redis
        self._stop_beat = threading.Event()
        threading.Thread(target=self._beat, daemon=True).start()

    def restart_server(self):
        pass  # Redis is the server; it holds no bench state worth resetting

    def stop(self):
        self._stop_beat.set()
        super().stop()

    def _beat(self):
        """The floor's heartbeat: one PUBLISH that every subscriber also listens to."""
        import json

        import redis

        client = redis.Redis.from_url(self.redis_url)
        while not self._stop_beat.wait(self.heartbeat_interval):
            try:
                client.publish(HEARTBEAT_CHANNEL, json.dumps({"ts": time.time()}))
            except redis.RedisError:
                pass

    @property
    def watch_url(self):
        return self.redis_url

    def publisher_argv(self):
        return [sys.executable, "-m", "bench.publisher", "floor"]


CONTENDERS = ("notifier_eventlet", "notifier_gevent", "notifier_threading", "node_socketio",
              "redis_floor", "http_polling")


def make(name, log_dir, heartbeat_interval):
    if name.startswith("notifier_"):
        return Notifier(log_dir, heartbeat_interval, name.split("_", 1)[1])
    return {"node_socketio": NodeSocketIO, "redis_floor": RedisFloor,
            "http_polling": HttpPolling}[name](log_dir, heartbeat_interval)
