"""Production shape: the checked-in nginx snippets in front of real web processes, what
TRUSTED_PROXIES believes, and operator announcements through the message queue.

nginx runs as a plain program on a config generated into a temporary folder (never /etc/nginx),
including deploy/nginx/*.nginx with their edit points filled in: a free port, the web processes'
ports and this checkout. Missing nginx skips these tests, or fails them when REQUIRE_NGINX is set
(``NGINX`` names another binary).
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
import requests
import socketio
from requests.adapters import HTTPAdapter
from clients import ReplayingWatcher, Watcher, cancel, in_seq_order, metric, submit
from processes import (NAMESPACE, ROOT, Process, free_port, process_env, start_redis, start_web,
                       start_worker, wait_for)

from deploy.nginx_config import LOAD_BALANCED, SINGLE, nginx_command, write_config

pytestmark = pytest.mark.e2e

NGINX = os.environ.get("NGINX") or shutil.which("nginx") or "/usr/sbin/nginx"


def require_nginx():
    if not os.path.exists(NGINX):
        if os.environ.get("REQUIRE_NGINX"):
            pytest.fail(f"{NGINX} is missing (apt-get install nginx-light)")
        pytest.skip("nginx is not installed (apt-get install nginx-light)")


# ---- real processes behind a real nginx -----------------------------------------------------------

def start_nginx(snippet, web_ports, log_dir, *, tls=None):
    """nginx on a free port in front of ``web_ports``, from the project's snippet."""
    port = free_port()
    run_dir = tempfile.mkdtemp(prefix="nginx-", dir=log_dir)
    config = write_config(run_dir, snippet, listen=f"127.0.0.1:{port}", tls=tls,
                          backends=[f"127.0.0.1:{p}" for p in web_ports])
    proc = Process(f"nginx-{port}", nginx_command(config, NGINX), dict(os.environ), log_dir).start()
    proc.port = port
    proc.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    def listening():
        assert proc.alive(), f"nginx exited:\n{proc.output()}"
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 10, message=f"nginx on port {port}")
    return proc


def deploy(started, log_dir, *, web=1, worker=True, tls=None, **env):
    """A private Redis, ``web`` web processes, a worker (unless told) and nginx in front.

    Every process is appended to ``started`` as it starts, so the caller stops them all.
    """
    require_nginx()
    redis_port = free_port()
    started.append(start_redis(redis_port, log_dir))
    url = f"redis://127.0.0.1:{redis_port}/0"
    env = process_env(url, **{"HEARTBEAT_INTERVAL": 1, "PROGRESS_MIN_INTERVAL": 0,
                              "TRUSTED_PROXIES": 1, **env})
    webs = []
    for _ in range(web):
        webs.append(start_web(env, log_dir))
        started.append(webs[-1])
    if worker:
        started.append(start_worker(env, log_dir))
    proxy = start_nginx(SINGLE if web == 1 else LOAD_BALANCED, [w.port for w in webs], log_dir,
                        tls=tls)
    started.append(proxy)
    return SimpleNamespace(url=proxy.url, nginx=proxy, webs=webs, env=env, redis_url=url)


@pytest.fixture
def deployment(log_dir):
    """Start a deployment with ``deployment(web=N, **env)``; everything stops after the test."""
    started = []
    yield lambda **options: deploy(started, log_dir, **options)
    for proc in reversed(started):
        proc.stop()


@pytest.fixture(scope="module")
def balanced(log_dir):
    """Two web processes behind ws.loadbalance.nginx, and a worker, shared by a few tests."""
    started = []
    try:
        yield deploy(started, log_dir, web=2)
    finally:
        for proc in reversed(started):
            proc.stop()


class SourceAddressAdapter(HTTPAdapter):
    """Opens every connection from one local address: nginx's ip_hash sees a different client."""

    def __init__(self, address, **kwargs):
        self.address = address
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def session_from(address):
    """A requests session whose connections come from ``address`` (say 127.0.7.1)."""
    session = requests.Session()
    session.mount("http://", SourceAddressAdapter(address))
    return session


def connect(watcher, headers=None):
    """Connect a clients.Watcher, with extra HTTP headers on its handshake."""
    watcher.sio.connect(watcher.url, namespaces=[NAMESPACE], transports=watcher.transports,
                        headers=headers or {}, wait_timeout=10)
    return watcher


def assert_gap_free(events, final_seq):
    assert in_seq_order(events) == list(range(final_seq + 1)), [d["seq"] for _, d in events]


class Links(HTMLParser):
    """Every ``src`` and every ``<link href>`` of a page: what a browser fetches to show it."""

    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("src"):
            self.urls.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.urls.append(attrs["href"])


def page_assets(html):
    parser = Links()
    parser.feed(html)
    return [url for url in parser.urls if not url.startswith("data:")]


# ---- what the snippets themselves do -----------------------------------------------------------------
# A recording HTTP server stands in for the web process here: what is checked is what nginx
# sends to it and what nginx lets through, not the app.

@pytest.fixture
def recorder():
    """A backend that answers 200 to anything and keeps the headers of each request it got."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, dict(self.headers)))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield SimpleNamespace(port=server.server_port, seen=seen)
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("snippet", [SINGLE, LOAD_BALANCED], ids=["ws", "loadbalance"])
def test_only_a_websocket_handshake_is_sent_on_as_an_upgrade(recorder, log_dir, snippet):
    require_nginx()
    proxy = start_nginx(snippet, [recorder.port], log_dir)
    try:
        polling = "/socket.io/?EIO=4&transport=polling"
        assert requests.get(proxy.url + polling, timeout=10).status_code == 200
        handshake = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
                     "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
        requests.get(proxy.url + "/socket.io/?EIO=4&transport=websocket", headers=handshake,
                     timeout=10)
        (_, poll), (_, upgrade) = recorder.seen
        assert poll["Connection"].lower() == "close" and "Upgrade" not in poll
        assert upgrade["Connection"].lower() == "upgrade" and upgrade["Upgrade"] == "websocket"
    finally:
        proxy.stop()


@pytest.mark.parametrize("snippet", [SINGLE, LOAD_BALANCED], ids=["ws", "loadbalance"])
def test_metrics_answer_only_this_machine(recorder, log_dir, snippet):
    require_nginx()
    proxy = start_nginx(snippet, [recorder.port], log_dir)
    try:
        assert requests.get(proxy.url + "/metrics", timeout=10).status_code == 200
        elsewhere = session_from("127.0.9.1")  # any address but 127.0.0.1 and ::1
        assert elsewhere.get(proxy.url + "/metrics", timeout=10).status_code == 403
        assert elsewhere.get(proxy.url + "/metrics?x=1", timeout=10).status_code == 403
        assert elsewhere.get(proxy.url + "/healthz", timeout=10).status_code == 200
        assert [path for path, _ in recorder.seen] == ["/metrics", "/healthz"]
    finally:
        proxy.stop()


# ---- the settings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw", ["one", "-1", "1.5"])
def test_a_bad_trusted_proxies_value_is_a_clear_error(raw):
    from notifier.settings import Settings

    with pytest.raises(ValueError, match="TRUSTED_PROXIES"):
        Settings.from_env({"TRUSTED_PROXIES": raw})


def test_trusted_proxies_defaults_to_none():
    from notifier.settings import Settings

    assert Settings.from_env({}).trusted_proxies == 0
    assert Settings.from_env({"TRUSTED_PROXIES": "2"}).trusted_proxies == 2


# ---- one web process behind ws.nginx --------------------------------------------------------------

def test_one_process_behind_nginx_serves_pages_assets_and_the_api(deployment):
    site = deployment(web=1)
    job = submit(site.url, steps=3, interval=0.05)
    for path in ("/", f"/jobs/{job['job_id']}"):
        page = requests.get(site.url + path, timeout=10)
        assert page.status_code == 200, path
        assets = page_assets(page.text)
        assert "/static/vendor/socket.io.min.js" in assets and len(assets) >= 3, assets
        for asset in assets:
            answer = requests.get(site.url + asset, timeout=10)
            assert answer.status_code == 200, asset
            assert answer.headers["Content-Type"].startswith(
                "application/javascript" if asset.endswith(".js") else "text/css"), asset
    assert requests.get(f"{site.url}/api/jobs/{job['job_id']}", timeout=10).json()["job_id"] == \
        job["job_id"]
    assert requests.get(f"{site.url}/api/jobs/nope", timeout=10).status_code == 404


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_one_process_behind_nginx_delivers_every_event_over(deployment, transport):
    site = deployment(web=1)
    # The page's own origin, as a browser sends it: accepted only if nginx forwards Host's port.
    # (websocket-client sends the Origin itself; a second one in the headers would be a duplicate.)
    watcher = Watcher(site.url, transports=(transport,),
                      websocket_extra_options={"origin": site.url})
    connect(watcher, {"Origin": site.url} if transport == "polling" else {})
    try:
        assert watcher.sio.transport() == transport
        job_id = submit(site.url, steps=20, interval=0.05)["job_id"]
        assert watcher.subscribe(job_id, last_seq=-1)["ok"]
        final = watcher.wait_finished(job_id, 30)
        assert final["state"] == "SUCCESS"
        assert_gap_free(watcher.job_events(job_id), final["seq"])
        assert len(watcher.finished(job_id)) == 1
    finally:
        watcher.close()


# ---- several web processes behind ws.loadbalance.nginx ----------------------------------------------

def test_long_polling_clients_stay_on_their_process_and_both_processes_get_some(balanced):
    clients = [Watcher(balanced.url, transports=("polling",), http_session=session_from(f"127.0.{n}.1"))
               for n in range(1, 25)]
    try:
        for client in clients:
            connect(client)

        # Each heartbeat answers a long poll: a few of them mean a few polls went to the process
        # that holds the session (any other one would answer "Invalid session").
        def beaten(client, count):
            return len(client.heartbeats()) >= count
        wait_for(lambda: all(beaten(c, 3) for c in clients), 30, message="3 heartbeats each")
        for client in clients:
            assert client.sio.connected
            assert len([name for name, _ in client.events if name == "connect"]) == 1
            assert len({beat["server"] for beat in client.heartbeats()}) == 1
        held = [metric(web.url, "notifier_clients_connected") for web in balanced.webs]
        assert sum(held) == len(clients) and all(held), held

        job_id = submit(balanced.url, steps=5, interval=0.05)["job_id"]
        for client in clients:
            assert client.subscribe(job_id, last_seq=-1)["ok"]
        for client in clients:
            final = client.wait_finished(job_id, 30)
            assert_gap_free(client.job_events(job_id), final["seq"])
    finally:
        for client in clients:
            client.close()


def test_a_watcher_whose_process_dies_carries_on_through_the_other_one(deployment):
    site = deployment(web=2)
    watcher = ReplayingWatcher(site.url, reconnection_delay=0.5, reconnection_delay_max=1)
    watcher.connect()
    try:
        job_id = submit(site.url, steps=60, interval=0.1)["job_id"]
        assert watcher.follow(job_id)["ok"]
        wait_for(lambda: len(watcher.seqs(job_id)) >= 5, 30, message="a few events before the crash")
        [its_web] = [w for w in site.webs if metric(w.url, "notifier_clients_connected") == 1]
        [other] = [w for w in site.webs if w is not its_web]
        its_web.kill()
        final = watcher.wait_finished(job_id, 60)
        assert final["state"] == "SUCCESS"
        assert watcher.connections() >= 2, "the client never reconnected"
        assert_gap_free(watcher.job_events(job_id), final["seq"])
        assert len(watcher.finished(job_id)) == 1
        assert metric(other.url, "notifier_clients_connected") == 1
    finally:
        watcher.close()


# ---- what TRUSTED_PROXIES believes ----------------------------------------------------------------

def post_job(session, url, **headers):
    return session.post(f"{url}/api/jobs", json={"kind": "sleep", "params": {"steps": 1}},
                        headers=headers, timeout=10).status_code


def test_behind_nginx_the_rate_limit_counts_each_client_address(deployment):
    site = deployment(web=1, worker=False, SUBMIT_RATE_LIMIT="3 per minute")
    first, second = session_from("127.0.1.1"), session_from("127.0.2.1")
    # A forged X-Forwarded-For is kept by nginx, but only the address nginx adds is believed.
    answers = [post_job(first, site.url, **{"X-Forwarded-For": f"10.0.0.{n}"}) for n in range(4)]
    assert answers == [202, 202, 202, 429]
    assert post_job(second, site.url) == 202


def test_without_trusted_proxies_a_forged_forwarded_for_is_ignored(deployment):
    site = deployment(web=1, worker=False, SUBMIT_RATE_LIMIT="3 per minute", TRUSTED_PROXIES=0)
    direct = site.webs[0].url  # no proxy: the client itself claims to be forwarded
    answers = [post_job(requests.Session(), direct, **{"X-Forwarded-For": f"10.0.0.{n}"})
               for n in range(4)]
    assert answers == [202, 202, 202, 429]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """A throwaway self-signed certificate for 127.0.0.1: nginx terminates TLS in front."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def https_client(origin, certificate):
    """A Socket.IO client that trusts the test's certificate and sends ``origin`` on websockets."""
    session = requests.Session()
    session.trust_env = False  # else REQUESTS_CA_BUNDLE from the environment wins over verify
    session.verify = certificate[0]  # passed on to the websocket too
    return socketio.Client(http_session=session, reconnection=False,
                           websocket_extra_options={"origin": origin})


@pytest.mark.parametrize("trusted", [1, 0])
def test_the_pages_https_origin_through_a_tls_proxy_is_accepted_only_with_trusted_proxies(
        deployment, certificate, trusted):
    site = deployment(web=1, worker=False, tls=certificate, TRUSTED_PROXIES=trusted)
    origin = site.url  # https://127.0.0.1:<nginx port>: the origin of a page served through nginx
    assert origin.startswith("https://")
    for transport in ("polling", "websocket"):
        client = https_client(origin, certificate)
        headers = {"X-Forwarded-Proto": "https"}
        if transport == "polling":  # websocket-client sends the origin itself
            headers["Origin"] = origin
        try:
            if trusted:
                client.connect(site.url, namespaces=[NAMESPACE], transports=[transport],
                               headers=headers, wait_timeout=10)
                assert client.transport() == transport
            else:
                with pytest.raises(socketio.exceptions.ConnectionError):
                    client.connect(site.url, namespaces=[NAMESPACE], transports=[transport],
                                   headers=headers, wait_timeout=10)
        finally:
            client.disconnect()
    # The session cookie (CSRF) is Secure only when the proxy's word about https is believed.
    page = requests.get(site.url + "/", verify=certificate[0], timeout=10)
    cookie = page.headers["Set-Cookie"]
    assert cookie.startswith("session=") and "SameSite=Lax" in cookie
    assert ("; Secure" in cookie) == bool(trusted), cookie
    if not trusted:  # the same connection with the backend's own (http) origin gets through
        client = https_client(origin.replace("https://", "http://"), certificate)
        try:
            client.connect(site.url, namespaces=[NAMESPACE], transports=["websocket"],
                           wait_timeout=10)
        finally:
            client.disconnect()


# ---- operator announcements (python -m notifier.announce) -------------------------------------------

def announce(site, *args, **env):
    """Run the announce command against ``site``'s message queue; returns the finished process."""
    return subprocess.run([sys.executable, "-m", "notifier.announce", *args], cwd=ROOT,
                          env=process_env(site.redis_url, **env), capture_output=True, text=True,
                          timeout=60)


def listening_for_announcements(client):
    """Record each announcement a Watcher gets, with every argument it came with."""
    client.sio.on("announcement", lambda *args: client.events.append(("announcement", args)),
                  namespace=NAMESPACE)
    return client


def announcements(client):
    return [args for name, args in list(client.events) if name == "announcement"]


@pytest.fixture
def spread_clients(balanced):
    """Polling clients through the balancer from different addresses, on both web processes."""
    clients = [listening_for_announcements(
        Watcher(balanced.url, transports=("polling",), http_session=session_from(f"127.0.{n}.1")))
        for n in range(40, 48)]
    for client in clients:
        connect(client)
    held = [metric(web.url, "notifier_clients_connected") for web in balanced.webs]
    assert all(held), f"these addresses all hash to one process: {held}"
    yield clients
    for client in clients:
        client.close()


def test_an_announcement_reaches_every_client_on_every_process_with_title_and_body(
        balanced, spread_clients):
    done = announce(balanced, "Maintenance", "Jobs pause at 18:00")
    assert done.returncode == 0, done.stderr
    for client in spread_clients:
        wait_for(lambda: announcements(client), 10, message="the announcement")
        assert announcements(client) == [("Maintenance", "Jobs pause at 18:00")]


def test_an_announcement_to_one_job_reaches_only_its_watchers(balanced, spread_clients):
    jobs = [submit(balanced.url, steps=300, interval=0.1) for _ in range(2)]
    watched, other = (job["job_id"] for job in jobs)
    try:
        for n, client in enumerate(spread_clients):
            if n % 3 != 2:  # a third watch nothing
                assert client.subscribe(watched if n % 3 == 0 else other)["ok"]
        done = announce(balanced, "Slow", "this one takes a while", "--job", watched)
        assert done.returncode == 0, done.stderr
        # Then one to everyone: the queue keeps their order, so once a client has the second,
        # it would already have the first.
        assert announce(balanced, "All", "everyone").returncode == 0
        for n, client in enumerate(spread_clients):
            wait_for(lambda: ("All", "everyone") in announcements(client), 10,
                     message="the announcement to everyone")
            expected = [("Slow", "this one takes a while")] if n % 3 == 0 else []
            assert announcements(client) == expected + [("All", "everyone")], n
    finally:
        for job in jobs:
            cancel(balanced.url, job)


def test_the_terminal_watcher_prints_announcements(balanced):
    job = submit(balanced.url, steps=300, interval=0.1)
    job_id = job["job_id"]
    logs = tempfile.mkdtemp(prefix="cli-", dir=os.path.join(ROOT, "test-artifacts"))
    watchers = {}
    try:
        for mode in ("json", "live"):
            out, err = (open(os.path.join(logs, f"{mode}.{name}"), "w+") for name in ("out", "err"))
            argv = [sys.executable, "-m", "jobclient", "--url", balanced.url, "watch", job_id]
            proc = subprocess.Popen(argv + (["--json"] if mode == "json" else []), cwd=ROOT,
                                    stdout=out, stderr=err, env=process_env(balanced.redis_url))
            watchers[mode] = (proc, out, err)
        # Once a watcher printed its first snapshot, it is subscribed.
        for proc, out, _ in watchers.values():
            wait_for(lambda: open(out.name).read().strip(), 30, message="the watcher's first line")
        assert announce(balanced, "<b>Note</b>", "body & more", "--job", job_id).returncode == 0

        proc, out, err = watchers["json"]
        line = wait_for(lambda: open(err.name).read().strip(), 10, message="the JSON announcement")
        assert json.loads(line) == {"announcement": {"title": "<b>Note</b>", "body": "body & more"}}
        proc, out, err = watchers["live"]
        wait_for(lambda: "announcement: <b>Note</b>: body & more" in open(out.name).read(), 10,
                 message="the printed announcement")
    finally:
        cancel(balanced.url, job)
        for proc, out, err in watchers.values():
            proc.wait(30)
            out.close()
            err.close()
    assert all(json.loads(line)["job_id"] == job_id for line in open(watchers["json"][1].name))


@pytest.mark.parametrize("args", [[], ["only a title"], ["", "body"], ["title", "  "],
                                  ["title", "body", "--job", "not-a-job-id"]])
def test_announce_with_bad_arguments_prints_usage_and_exits_2(balanced, args):
    done = announce(balanced, *args)
    assert done.returncode == 2
    assert done.stderr.startswith("usage: python -m notifier.announce")
    assert "announced" not in done.stdout


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_announce_to_an_unreachable_queue_fails_with_one_line(balanced, scheme):
    queue = f"{scheme}://user:secret@127.0.0.1:{free_port()}/"
    done = announce(balanced, "Title", "Body", SOCKETIO_MESSAGE_QUEUE=queue)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the message queue"), done.stderr
    assert "secret" not in done.stderr


@pytest.mark.browser
def test_a_page_shows_an_announcement_as_text_and_it_can_be_dismissed(balanced, page):
    from playwright.sync_api import expect

    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: problems.append(f"dialog: {dialog.message}"))
    page.goto(balanced.url + "/")
    expect(page.locator("#connection")).to_have_text("live", timeout=20_000)
    title, body = "<b>Maintenance</b>", '<img src="x" onerror="alert(1)"> at 18:00'
    assert announce(balanced, title, body).returncode == 0

    banner = page.locator(".announcement")
    expect(banner).to_have_count(1, timeout=20_000)
    expect(banner.locator(".title")).to_have_text(title)
    expect(banner.locator(".body")).to_have_text(body)
    assert banner.locator("b, img").count() == 0  # shown as text, never as markup
    banner.get_by_role("button", name="Dismiss").click()
    expect(banner).to_have_count(0)
    assert problems == []
