"""The Makefile's own promises, run for real: `make venv` repairs an interrupted first run, and
`make cluster` (nginx, two web processes, a worker, Redis) answers through nginx and shares one
session key, whatever PORT a `.env` made for `make run` says."""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import requests

from processes import ROOT, Process, free_port, wait_for

pytestmark = pytest.mark.e2e


def make_env(**extra):
    """The environment a person runs make in: no SECRET_KEY, PORT or REDIS_URL of the suite's."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("SECRET_KEY", "PORT", "REDIS_URL", "HEARTBEAT_INTERVAL", "MAKEFLAGS", "MAKELEVEL")}
    env.update(extra)
    return env


def test_make_venv_repairs_a_venv_whose_first_making_was_interrupted(tmp_path):
    venv = tmp_path / "venv"
    # What an interrupted `python -m venv` leaves: the interpreter, but no pip yet.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode != 0
    done = subprocess.run(["make", "venv", f"VENV={venv}", f"PYTHON={shutil.which('python3')}"],
                          cwd=ROOT, env=make_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode == 0
    again = subprocess.run(["make", "venv", f"VENV={venv}"], cwd=ROOT, env=make_env(),
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "-m venv" not in again.stdout, again.stdout  # nothing to redo


def two_free_ports():
    """A port whose next one is free too: honcho numbers the web processes PORT, PORT + 1."""
    while True:
        port = free_port()
        if not listening(port + 1):
            return port


def honcho_under(pid):
    """The pid of the honcho process below ``pid`` (make, then its shell), or None."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            if b"honcho" in f.read():
                return pid
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(child) for child in f.read().split()]
    except OSError:
        return None
    return next(filter(None, map(honcho_under, children)), None)


def listening(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, log_dir):
    """`make cluster WEB=2` with a `.env` that sets PORT (as one written for `make run` might)."""
    if not (shutil.which("nginx") or os.path.exists("/usr/sbin/nginx")):
        if os.environ.get("REQUIRE_NGINX"):
            pytest.fail("nginx is missing (apt-get install nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")
    folder = tmp_path_factory.mktemp("cluster")
    web_port, redis_port, listen = two_free_ports(), free_port(), free_port()
    env_file = folder / ".env"
    env_file.write_text(f"PORT={web_port}\nREDIS_URL=redis://127.0.0.1:{redis_port}/0\n"
                        f"REDIS_DATA_DIR={folder / 'redis'}\n")
    proc = Process("make-cluster", ["make", "cluster", "WEB=2", f"ENV_FILE={env_file}",
                                    f"CLUSTER_DIR={folder / 'run'}", f"LISTEN=127.0.0.1:{listen}"],
                   make_env(), log_dir).start()

    def healthy(url):
        assert proc.alive(), f"make cluster exited:\n{proc.output()}"
        try:
            return requests.get(f"{url}/healthz", timeout=5).status_code == 200
        except requests.RequestException:  # not listening yet, or still booting
            return False

    webs = [f"http://127.0.0.1:{web_port + n}" for n in range(2)]
    try:
        for url in webs:
            wait_for(lambda: healthy(url), 60, message=f"the web process at {url}")
        wait_for(lambda: listening(listen), 30, message="nginx")
        honcho = honcho_under(proc.popen.pid)
        yield type("Cluster", (), {"url": f"http://127.0.0.1:{listen}", "webs": webs, "proc": proc})
    finally:
        # Ctrl-C, as a person stops it. honcho runs each process in a session of its own, so only
        # honcho can stop them: wait for it to finish before anything is killed.
        proc.signal_group(signal.SIGINT)
        if honcho:
            wait_for(lambda: not os.path.exists(f"/proc/{honcho}"), 60, message="honcho to stop")
        proc.stop(timeout=30)


def test_nginx_finds_the_web_processes_where_port_in_env_put_them(cluster):
    for path in ("/", "/healthz"):
        answer = requests.get(cluster.url + path, timeout=10)
        assert answer.status_code == 200, (path, answer.status_code, cluster.proc.output()[-2000:])


def test_a_form_from_one_web_process_submits_through_another(cluster):
    """After a failover the browser's next request reaches another process: its CSRF check
    must accept what the first one signed."""
    first, second = cluster.webs
    browser = requests.Session()
    page = browser.get(first + "/", timeout=10).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answer = browser.post(second + "/jobs", data={"csrf_token": token, "kind": "sleep",
                                                  "sleep-steps": "1", "sleep-interval": "0"},
                          allow_redirects=False, timeout=10)
    assert answer.status_code == 303, answer.text[:500]
