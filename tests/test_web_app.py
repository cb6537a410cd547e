"""The web app's own guards, on a real Redis, through Flask's test client or served by werkzeug to
real Socket.IO clients: the session cookie's flags, the host names it answers to, rooms a client
may join, and the collector's tuning."""

import gc
import weakref
from dataclasses import replace

import pytest

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


def make_app(**overrides):
    from notifier.settings import Settings
    from webapp import create_app

    settings = replace(Settings.from_env(), async_mode="threading", **overrides)
    app = create_app(settings, background_loops=False)
    app.config.update(TESTING=True)
    return app


def session_cookie(response):
    [cookie] = [value for value in response.headers.getlist("Set-Cookie")
                if value.startswith("session=")]
    return {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")}


# ---- the session cookie ---------------------------------------------------------------------------

def test_the_session_cookie_is_samesite_lax_and_not_secure_over_plain_http(store):
    cookie = session_cookie(make_app().test_client().get("/"))
    assert cookie["samesite"] == "SameSite=Lax"
    assert "secure" not in cookie


def test_behind_a_trusted_https_proxy_the_session_cookie_is_secure(store):
    client = make_app(trusted_proxies=1).test_client()
    cookie = session_cookie(client.get("/", headers={"X-Forwarded-Proto": "https"}))
    assert "secure" in cookie and cookie["samesite"] == "SameSite=Lax"
    assert "secure" in session_cookie(make_app().test_client().get("/", base_url="https://localhost"))


def test_a_forged_https_claim_without_trusted_proxies_changes_nothing(store):
    cookie = session_cookie(make_app().test_client().get("/", headers={"X-Forwarded-Proto": "https"}))
    assert "secure" not in cookie


# ---- the host names the app answers to (ALLOWED_HOSTS) --------------------------------------------

def test_allowed_hosts_default_to_what_make_run_and_make_cluster_use():
    from notifier.settings import Settings

    assert Settings.from_env({}).allowed_hosts == ["localhost", "127.0.0.1"]
    assert Settings.from_env({"ALLOWED_HOSTS": " Jobs.Example.com, .example.org"}).allowed_hosts == \
        ["jobs.example.com", ".example.org"]


@pytest.mark.parametrize("host", ["localhost", "localhost:5000", "127.0.0.1:8000"])
def test_pages_and_sockets_answer_on_an_allowed_host(store, host):
    client = make_app().test_client()
    assert client.get("/", headers={"Host": host}).status_code == 200
    # Its own origin: what a page of the app sends with a long-polling handshake.
    response = client.get(HANDSHAKE, headers={"Host": host, "Origin": f"http://{host}"})
    assert response.status_code == 200 and b'"sid"' in response.get_data()


@pytest.mark.parametrize("host", ["rebind.example:5000", "127.0.0.1.rebind.example", "localhost.:5000"])
def test_a_dns_rebinding_page_is_refused_on_pages_and_sockets(store, host):
    """The page's origin matches the Host header, as after DNS rebinding: only the name is wrong."""
    client = make_app().test_client()
    assert client.get("/", headers={"Host": host}).status_code == 400
    assert client.post("/api/jobs", json={"kind": "sleep", "params": {}},
                       headers={"Host": host, "Origin": f"http://{host}"}).status_code == 400
    for headers in ({"Host": host, "Origin": f"http://{host}"}, {"Host": host}):
        assert client.get(HANDSHAKE, headers=headers).status_code == 400
    assert store.redis.keys("notifier:job:*") == []


def test_allowed_hosts_may_name_a_domain_and_its_subdomains_or_any_host(store):
    client = make_app(allowed_hosts=[".example.com"]).test_client()
    assert client.get("/", headers={"Host": "jobs.example.com"}).status_code == 200
    assert client.get("/", headers={"Host": "example.com:8443"}).status_code == 200
    assert client.get("/", headers={"Host": "localhost"}).status_code == 400
    assert make_app(allowed_hosts=["*"]).test_client().get(
        "/", headers={"Host": "anything.example"}).status_code == 200


# ---- rooms ------------------------------------------------------------------------------------------

@pytest.fixture
def served(store):
    """The app served over real HTTP by werkzeug's threaded server, in this process."""
    import threading

    from werkzeug.serving import make_server

    app = make_app()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


def test_a_client_cannot_join_another_clients_own_room(served):
    """Every client sits in a room named by its sid: subscribing to that "job" must not get in."""
    import socketio as python_socketio

    from processes import wait_for
    from webapp.extensions import socketio

    clients = {name: python_socketio.Client(reconnection=False) for name in ("victim", "intruder")}
    got = {name: [] for name in clients}
    try:
        for name, client in clients.items():
            client.on("announcement", lambda *args, name=name: got[name].append(args),
                      namespace="/jobs")
            client.connect(served, namespaces=["/jobs"], transports=["websocket"], wait_timeout=10)
        victim_sid = clients["victim"].get_sid("/jobs")
        ack = clients["intruder"].call("subscribe", {"job_id": victim_sid, "last_seq": -1},
                                       namespace="/jobs", timeout=10)
        manager = socketio.server.manager
        intruder_sid = clients["intruder"].get_sid("/jobs")
        assert set(manager.get_rooms(intruder_sid, "/jobs")) == {intruder_sid}
        # What the server sends to the victim's room reaches the victim only.
        socketio.emit("announcement", ("private", "to the victim"), to=victim_sid, namespace="/jobs")
        socketio.emit("announcement", ("all", "everyone"), namespace="/jobs")
        wait_for(lambda: len(got["victim"]) == 2 and got["intruder"], 10, message="the announcements")
        assert got["intruder"] == [("all", "everyone")]
        assert ack["ok"] is False and ack["error"]["code"] == "invalid", ack
    finally:
        for client in clients.values():
            client.disconnect()


# ---- the collector ----------------------------------------------------------------------------------

def test_garbage_left_when_the_collector_is_tuned_is_collected_not_frozen():
    from webapp import _tune_collector

    class Node:
        pass

    cycle = Node()
    cycle.self = cycle  # only the cyclic collector can free it
    gone = weakref.ref(cycle)
    del cycle
    thresholds = gc.get_threshold()
    gc.disable()  # nothing may collect it behind the test's back
    try:
        _tune_collector()
        assert gone() is None, "garbage was frozen into the permanent generation"
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        gc.enable()
