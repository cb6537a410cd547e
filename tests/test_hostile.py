"""Nobody in, nothing broken: hostile Socket.IO traffic, bad params, and who may watch or submit."""

import json
import os
import uuid

import pytest
import redis
import requests
import socketio
import websocket

from clients import Watcher, api_job, cancel, in_seq_order, metric, raw_websocket, submit
from processes import children, free_port, process_env, rss_bytes, tcp_connections, wait_for

FUZZ_ID = str(uuid.uuid4())
MALFORMED = [
    "", "9", "4", "4x", "40/jobs", "40/nope,", "41/nope,", "42/jobs,", "42/jobs,[", "42/jobs,{}",
    "42/jobs,[1,2]", '42/jobs,["subscribe"]', '42/jobs,1["subscribe",null]',
    '42/jobs,2["subscribe",[1,2,3]]', '42/jobs,3["subscribe","x"]', '42/jobs,4["subscribe",{"job_id":123}]',
    f'42/jobs,5["subscribe",{{"job_id":"{FUZZ_ID}","last_seq":"x"}}]',
    f'42/jobs,6["subscribe",{{"job_id":"{FUZZ_ID}","last_seq":1e400}}]',
    f'42/jobs,7["subscribe",{{"job_id":"{FUZZ_ID}","last_seq":-99999999999999999999999}}]',
    '42/jobs,8["subscribe",{"job_id":"\\ud800"}]', '42/jobs,9["no_such_event",{}]',
    '42/jobs,10["unsubscribe",null]', '42/jobs,11["connect",{}]', '42/jobs,12["disconnect"]',
    '45-/jobs,13["subscribe",{"_placeholder":true,"num":0}]', "43/jobs,99[]", "44/jobs,{}",
    '42/jobs,14["subscribe",' + "[" * 4000 + "]" * 4000 + "]",
    '42/jobs,15["subscribe",{"job_id":"' + "a" * 15000 + '"}]',
    "2", "3", "6", "5", "1",
]


def _throw_malformed_packets(url):
    """One raw Engine.IO connection per packet, so each is judged on its own; then binary junk,
    an oversized frame and junk over HTTP long-polling."""
    for packet in MALFORMED:
        ws = raw_websocket(url)
        try:
            ws.send("40/jobs,")
            ws.send(packet)
            ws.send("2")  # the connection may be closed by now, or still answer
        except (websocket.WebSocketException, OSError):
            pass
        finally:
            ws.close()
    ws = raw_websocket(url)
    try:
        ws.send_binary(b"\x00\x01\xffjunk")
        ws.send("40/jobs,")
        ws.send('42/jobs,["subscribe","' + "x" * 200_000 + '"]')  # over max_http_buffer_size
        with pytest.raises((websocket.WebSocketException, OSError)):
            for _ in range(20):  # the server closes this connection: reading fails
                ws.recv()
    finally:
        ws.close()
    for query in ("EIO=4&transport=polling&sid=bogus", "EIO=99&transport=polling",
                  "EIO=4&transport=carrier-pigeon"):
        response = requests.post(f"{url}/socket.io/?{query}", data=b"\x00junk" * 100, timeout=5)
        assert response.status_code == 400


def _flood(url, job_id, calls=1500):
    """Thousands of subscribe calls (unknown jobs, the real one, junk) and unknown events."""
    sio = socketio.Client(reconnection=False)  # dropped on purpose below: stay away
    acks = []
    sio.connect(url, namespaces=["/jobs"], transports=["websocket"], wait_timeout=10)
    try:
        for n in range(calls):
            payload = [{"job_id": str(uuid.uuid4())}, {"job_id": job_id, "last_seq": n % 5},
                       {"job_id": job_id[:-1]}, n][n % 4]
            sio.emit("subscribe", payload, namespace="/jobs", callback=lambda *a: acks.append(a))
            sio.emit(f"event-{n}", {"x": n}, namespace="/jobs")
            # A client's events are handled in order, its pongs among them: with at most 20
            # subscribes queued ahead of a pong, a busy server still answers it within the timeout.
            if n % 20 == 19:
                wait_for(lambda: len(acks) == n + 1, 30, message=f"{n + 1} subscribe acks")
        wait_for(lambda: len(acks) == calls, 30, message=f"{calls} subscribe acks")
        codes = {ack[0]["error"]["code"] if not ack[0]["ok"] else "ok" for ack in acks}
        # Replays of the real job: some, until the connection's replay budget is spent.
        assert codes - {"rate_limited"} == {"ok", "not_found", "invalid"}
        # Oversized event through a proper client: its connection is dropped, nobody else's.
        sio.emit("subscribe", {"job_id": "x" * 100_000}, namespace="/jobs")
        wait_for(lambda: not sio.connected, 10, message="the oversized client to be disconnected")
    finally:
        sio.disconnect()


@pytest.mark.e2e
def test_hostile_clients_do_not_hurt_other_watchers_or_grow_memory(processes, log_dir):
    redis_port = free_port()
    processes.redis(redis_port)
    env = process_env(f"redis://127.0.0.1:{redis_port}/0", HEARTBEAT_INTERVAL=1,
                      JOB_STALL_TIMEOUT=60,
                      # python-engineio 4.15 leaves the socket of a client that sent an empty
                      # websocket frame to be reaped by the ping timeout: keep that short here.
                      SOCKETIO_PING_INTERVAL=4, SOCKETIO_PING_TIMEOUT=6)
    web = processes.web(env)
    processes.worker(env)
    # Runs until the test cancels it (1,000 s at most): however slow the machine, it is still
    # running, its room open, when the flooding ends.
    job = submit(web.url, steps=10_000, interval=0.1)
    job_id = job["job_id"]
    victim = Watcher(web.url).connect()
    try:
        assert victim.subscribe(job_id, last_seq=-1)["ok"]
        wait_for(lambda: len(victim.seqs(job_id)) >= 3, 30, message="the victim's first events")
        [worker_pid] = children(web.pid)
        _throw_malformed_packets(web.url)
        _flood(web.url, job_id)
        warm = rss_bytes(worker_pid)
        during = len(victim.seqs(job_id))
        for _ in range(2):
            _throw_malformed_packets(web.url)
            _flood(web.url, job_id)
        grown = rss_bytes(worker_pid) - warm
        assert web.alive() and children(web.pid) == [worker_pid], "the web worker restarted"
        assert grown < 40 * 2**20, f"web worker grew by {grown / 2**20:.1f} MiB over two more rounds"
        assert len(victim.seqs(job_id)) > during, "the victim stopped receiving progress"
        wait_for(lambda: metric(web.url, "notifier_clients_connected") == 1, 30,
                 message="only the victim to be left connected")
        assert metric(web.url, "notifier_rooms_open") == 1
        assert api_job(web.url, job_id)["state"] == "PROGRESS"
        cancel(web.url, job).raise_for_status()
        final = victim.wait_finished(job_id, 30)
        assert final["state"] == "REVOKED"
        assert in_seq_order(victim.job_events(job_id)) == list(range(final["seq"] + 1))
        assert victim.sio.connected
    finally:
        victim.close()


# ---- bodies: only JSON objects of bounded size (bad params: BAD_BODIES in test_api.py) --------------

def test_huge_or_non_object_bodies_are_refused(client, store):
    assert client.post("/api/jobs", data="[1]", content_type="application/json").status_code == 400
    huge = json.dumps({"kind": "sleep", "params": {"steps": 1}, "pad": "x" * 100_000})
    assert client.post("/api/jobs", data=huge, content_type="application/json").status_code == 413
    assert store.redis.keys("notifier:job:*") == []


# ---- who may watch and submit ---------------------------------------------------------------------

def test_the_form_needs_its_csrf_token_and_the_api_takes_only_json(client, store):
    no_token = client.post("/jobs", data={"kind": "sleep", "sleep-steps": "1"})
    assert no_token.status_code == 400
    as_form = client.post("/api/jobs", data={"kind": "sleep"})
    assert as_form.status_code == 415
    as_text = client.post("/api/jobs", data='{"kind": "sleep"}', content_type="text/plain")
    assert as_text.status_code == 415
    assert store.redis.keys("notifier:job:*") == []


def test_pages_carry_security_headers_and_never_render_job_text_as_html(client, store):
    job = store.create("sleep", {"steps": 1})
    store.update(job["job_id"], state="FAILURE", message="<img src=x onerror=alert(1)>",
                 error="<script>alert(2)</script>")
    for path in ("/", f"/jobs/{job['job_id']}"):
        response = client.get(path)
        assert response.status_code == 200
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "<img src=x" not in response.text and "<script>alert" not in response.text


def test_secret_key_is_required_in_production(processes, log_dir):
    from dataclasses import replace

    from notifier.settings import Settings
    from webapp import create_app

    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app(replace(Settings.from_env(), secret_key="", production=True,
                           async_mode="threading", heartbeat_interval=0))
    env = process_env(os.environ["REDIS_URL"], NOTIFIER_ENV="production")
    env.pop("SECRET_KEY")
    with pytest.raises(AssertionError, match="SECRET_KEY must be set"):
        processes.web(env)


@pytest.mark.e2e
def test_cross_origin_sockets_are_refused_unless_listed_and_submissions_are_rate_limited(processes):
    redis_port = free_port()
    processes.redis(redis_port)
    env = process_env(f"redis://127.0.0.1:{redis_port}/0", HEARTBEAT_INTERVAL=1,
                      CORS_ALLOWED_ORIGINS="https://allowed.example", SUBMIT_RATE_LIMIT="3 per minute")
    web = processes.web(env)

    def connects(origin):
        """Over long-polling (one Origin header: websocket-client would add its own beside ours)."""
        sio = socketio.Client(reconnection=False)
        try:
            sio.connect(web.url, namespaces=["/jobs"], transports=["polling"], wait_timeout=5,
                        headers={"Origin": origin} if origin else {})
            return True
        except socketio.exceptions.ConnectionError:
            return False
        finally:
            sio.disconnect()

    def websocket_opens(origin):
        try:
            websocket.create_connection(web.url.replace("http", "ws")
                                        + "/socket.io/?EIO=4&transport=websocket",
                                        origin=origin, timeout=5).close()
            return True
        except websocket.WebSocketBadStatusException:
            return False

    assert not connects("https://evil.example")
    assert not connects("http://allowed.example")  # scheme matters
    assert connects("https://allowed.example")
    assert connects(web.url)  # the page's own origin
    assert connects(None)  # not a browser: no Origin, nothing to protect
    assert not websocket_opens("https://evil.example")
    assert websocket_opens("https://allowed.example") and websocket_opens(web.url)

    accepted = [requests.post(f"{web.url}/api/jobs", json={"kind": "sleep", "params": {"steps": 1}},
                              timeout=5) for _ in range(3)]
    assert [r.status_code for r in accepted] == [202, 202, 202]
    session = requests.Session()
    page = session.get(web.url + "/", timeout=5).text
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    form = session.post(f"{web.url}/jobs", data={"csrf_token": token, "kind": "sleep",
                                                 "sleep-steps": "1", "sleep-interval": "0"},
                        allow_redirects=False, timeout=5)
    api = requests.post(f"{web.url}/api/jobs", json={"kind": "sleep", "params": {"steps": 1}},
                        timeout=5)
    for limited in (form, api):  # the form and the API share one limit per client
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0
    assert api.json()["error"]["code"] == "too_many_requests"
    keys = redis.Redis(port=redis_port).keys("*notifier:ratelimit*")
    assert keys, "the limiter keeps its counts in Redis"
    assert len(redis.Redis(port=redis_port).keys("notifier:job:*")) == 3


# ---- long-polling: a POST over the size limit is answered, and its socket let go ------------------

def _server_sockets_in_close_wait(port):
    """The web process's sockets on ``port`` whose client has hung up but which it still holds."""
    return sum(state == "08" for _, state, _ in tcp_connections(port))


def _raw_post(port, path, body, timeout=10):
    """POST ``body`` over a plain socket; returns the status line, or "" if the server hung up
    without one. Raises socket.timeout when nothing is answered within ``timeout`` seconds."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        try:
            sock.sendall(head + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # answered and closed before the whole body was read: the answer may still be there
        try:
            answer = sock.recv(4096)
        except ConnectionResetError:
            return ""
    return answer.split(b"\r\n", 1)[0].decode()


@pytest.mark.web_servers("eventlet", "gevent", "threading")
@pytest.mark.parametrize("size", [17 * 1024, 2**20], ids=["17KiB", "1MiB"])
def test_an_oversized_long_polling_post_is_answered_and_its_socket_let_go(processes, size):
    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1))
    opened = requests.get(f"{web.url}/socket.io/?EIO=4&transport=polling", timeout=5)
    sid = json.loads(opened.text[1:])["sid"]
    packet = ("4" + "x" * size).encode()  # one Engine.IO message, larger than the server takes
    status = _raw_post(web.port, f"/socket.io/?EIO=4&transport=polling&sid={sid}", packet)
    assert status in ("HTTP/1.1 413 Payload Too Large", ""), status
    wait_for(lambda: _server_sockets_in_close_wait(web.port) == 0, 10,
             message="the web process to close the sockets its clients hung up")
    # The session is closed: its next poll says so, and the server serves new sessions.
    closed = requests.get(f"{web.url}/socket.io/?EIO=4&transport=polling&sid={sid}", timeout=5)
    assert closed.status_code == 400 or closed.text.endswith("1")
    assert requests.get(f"{web.url}/socket.io/?EIO=4&transport=polling", timeout=5).status_code == 200


# ---- replays: what one connection may ask for ------------------------------------------------------

def _job_with_events(store, count):
    """A job with ``count`` recorded events (seq 0 .. count - 1), written as a worker would."""
    job_id = store.create("sleep", {"steps": count, "interval": 0})["job_id"]
    for step in range(1, count):
        store.update(job_id, state="PROGRESS", current=step, total=count, message=f"step {step} of {count}")
    return job_id


def test_a_last_seq_beyond_any_seq_is_invalid_or_has_nothing_to_replay(processes, store):
    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1))
    job_id = _job_with_events(store, 3)
    watcher = Watcher(web.url).connect()
    try:
        for last_seq in (2**64 - 2, 2**64 - 1, 2**64, 2**53):
            ack = watcher.subscribe(job_id, last_seq=last_seq)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack
        ack = watcher.subscribe(job_id, last_seq=2**53 - 1)  # the largest a browser holds exactly
        assert ack["ok"] and ack["history_from"] == ack["job"]["seq"] == 2
        assert watcher.seqs(job_id) == []
    finally:
        watcher.close()
    assert "unavailable" not in web.output()


def test_the_subscribe_ack_says_where_the_replay_starts(processes, store, settings):
    """``history_from`` is the first seq the replay sends: the one after ``last_seq``, or the
    oldest one the job's capped history still holds when what followed ``last_seq`` is gone. A
    client whose ack overtakes the replay waits for every seq from there on."""
    from dataclasses import replace

    from notifier.store import JobStore

    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1))
    job_id = _job_with_events(store, 40)
    trimmed_store = JobStore.from_settings(replace(settings, history_length=20))
    trimmed = _job_with_events(trimmed_store, 400)
    oldest = trimmed_store.history(trimmed)[0]["seq"]
    assert oldest > 11, "the history still holds what follows last_seq"
    watcher = Watcher(web.url).connect()
    try:
        ack = watcher.subscribe(job_id, last_seq=10)
        assert ack["ok"] and ack["job"]["seq"] == 39 and ack["history_from"] == 11, ack
        wait_for(lambda: watcher.seqs(job_id) == list(range(11, 40)), 10, message="seqs 11 to 39")
        ack = watcher.subscribe(trimmed, last_seq=10)
        assert ack["ok"] and ack["job"]["seq"] == 399 and ack["history_from"] == oldest, ack
        wait_for(lambda: watcher.seqs(trimmed) == list(range(oldest, 400)), 10,
                 message=f"seqs {oldest} to 399")
    finally:
        watcher.close()


def test_replays_beyond_a_connections_budget_are_refused_as_rate_limited(processes, store):
    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1))
    job_id = _job_with_events(store, 1000)
    greedy, other = Watcher(web.url).connect(), Watcher(web.url).connect()
    try:
        acks = [greedy.subscribe(job_id, last_seq=-1) for _ in range(5)]
        assert [ack["ok"] for ack in acks] == [True, True, False, False, False]
        refused = acks[2]["error"]
        assert refused["code"] == "rate_limited" and refused["retry_after"] > 0 and refused["message"]
        wait_for(lambda: len(greedy.seqs(job_id)) == 2000, 30, message="two whole replays")
        assert other.subscribe(job_id, last_seq=-1)["ok"], "the budget is per connection"
        assert greedy.subscribe(job_id, last_seq=998)["ok"], "a small replay still fits"
    finally:
        greedy.close()
        other.close()


def test_the_replay_budget_counts_events_so_shorter_replays_fit_more_often(processes, store):
    """The budget is two whole histories' worth of events (2 x 1,000 with the default history),
    not two replays: five replays of a 400-event job fit, the sixth waits for the refill (one
    history a minute: 400 events take at most 24 s)."""
    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1))
    job_id = _job_with_events(store, 400)
    watcher = Watcher(web.url).connect()
    try:
        acks = [watcher.subscribe(job_id, last_seq=-1) for _ in range(6)]
        assert [ack["ok"] for ack in acks] == [True] * 5 + [False], acks[-1]
        refused = acks[5]["error"]
        assert refused["code"] == "rate_limited" and 0 < refused["retry_after"] <= 24, refused
    finally:
        watcher.close()


def test_the_replay_budget_refills_one_history_a_minute(monkeypatch):
    """Two whole histories at once, then one more a minute. A clock the test moves stands in for
    waiting minutes."""
    from types import SimpleNamespace

    from notifier.flask import namespace

    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(namespace, "time", SimpleNamespace(monotonic=lambda: clock.now))
    budget = namespace.ReplayBudget(namespace.JobsNamespace("/jobs", None, None).replay_burst)
    budget.spend(1000)
    budget.spend(1000)
    with pytest.raises(namespace.ReplayRefused) as refused:
        budget.spend(1000)
    assert refused.value.retry_after == 60
    clock.now = 30.0
    with pytest.raises(namespace.ReplayRefused) as refused:
        budget.spend(1000)
    assert refused.value.retry_after == 30
    budget.spend(500)  # half a history came back in half a minute
    clock.now = 91.0
    budget.spend(1000)  # and a whole one in the minute after that


def test_a_client_asking_for_replays_it_never_reads_cannot_make_the_server_hold_them(processes, store):
    """100 replays of a 1,000-event job (333 KB each) asked for on one connection that never
    reads: without a bound the web process holds them all (about 45 MB) until the client goes."""
    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1))
    [worker_pid] = children(web.pid)
    job_id = _job_with_events(store, 1000)
    markers = [store.create("sleep", {"steps": 1})["job_id"] for _ in range(2)]
    warm = Watcher(web.url).connect()  # a normal replay first: what any process has done once
    assert warm.subscribe(job_id, last_seq=-1)["ok"]
    wait_for(lambda: len(warm.seqs(job_id)) == 1000, 30, message="a whole replay")
    warm.close()
    wait_for(lambda: metric(web.url, "notifier_clients_connected") == 0, 30, message="no client")
    before = rss_bytes(worker_pid)

    hostile = raw_websocket(web.url, receive_buffer=4096)
    try:
        hostile.send("40/jobs,")
        for n in range(100):
            hostile.send('42/jobs,%d["subscribe",{"job_id":"%s","last_seq":-1}]' % (n, job_id))
        # A client's events are handled in order: once both markers' rooms are open (a refused
        # subscribe leaves the client out of the job's room), all 100 were.
        for n, marker in enumerate(markers, 100):
            hostile.send('42/jobs,%d["subscribe",{"job_id":"%s"}]' % (n, marker))
        wait_for(lambda: metric(web.url, "notifier_rooms_open") == 2, 60,
                 message="the hostile client's 102 subscribes to be handled")
        held = rss_bytes(worker_pid) - before
    finally:
        hostile.close()
    wait_for(lambda: metric(web.url, "notifier_clients_connected") == 0, 30, message="it to leave")
    left = rss_bytes(worker_pid) - before
    assert held < 12 * 2**20, f"the web worker grew by {held / 2**20:.1f} MiB for one client"
    assert left < 12 * 2**20, f"the web worker kept {left / 2**20:.1f} MiB after it left"


def test_malformed_packets_are_logged_as_one_warning_line_now_and_then_not_a_traceback_each(processes):
    web = processes.web(process_env(os.environ["REDIS_URL"], HEARTBEAT_INTERVAL=1))
    ws = raw_websocket(web.url)
    try:
        ws.send("40/jobs,")
        junk = ["42/jobs,[", "42/jobs,{}", '42/jobs,7["subscribe",{"last_seq":1%s}]' % ("0" * 400)]
        for n in range(200):
            ws.send(junk[n % 3])
        ws.send('42/jobs,999["unsubscribe",{}]')  # its ack comes after the junk was handled
        wait_for(lambda: '43/jobs,999[{"ok":false' in ws.recv(), 30, message="the last ack")
    finally:
        ws.close()
    log = web.output()
    assert "Traceback" not in log and "handler error" not in log
    lines = [line for line in log.splitlines() if "malformed packet" in line]
    assert 1 <= len(lines) <= 2, lines  # one line per 10 s at most
    assert lines[0].startswith("WARNING: dropped a malformed packet from a client (JSONDecodeError")
