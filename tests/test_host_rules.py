"""A host app's own login decides who may watch and who may cancel: ``JobNotifier(can_watch=...,
can_cancel=...)`` in tests/login_app.py (flask-login; anyone logged in watches, a job's owner
cancels). Over HTTP through Flask's client; over Socket.IO with real python-socketio clients
against gunicorn in each async mode; in Chromium against the threading one."""

import logging
import os
import re
from dataclasses import replace

import pytest
import redis
import requests
from flask_socketio import SocketIO
from playwright.sync_api import expect

from notifier import access, events
from notifier.settings import Settings
from notifier.store import PENDING, JobStore

from clients import Watcher
from processes import BIN, WEB_SERVERS, _serving, free_port, process_env, wait_for

REDIS_DB_HOST_RULES = 6
TESTS = os.path.dirname(os.path.abspath(__file__))
SAME_SITE = {"Origin": "http://localhost"}  # the origin of Flask's test client's pages

expect.set_options(timeout=20_000)


# ---- over HTTP --------------------------------------------------------------------------------

@pytest.fixture
def host(settings, store):
    from login_app import create_app

    return create_app(replace(settings, async_mode="threading"), background_loops=False)


def client_of(app, user=None):
    """A test client, logged in as ``user`` when given."""
    client = app.test_client()
    if user:
        assert client.post(f"/login/{user}").status_code == 200
    return client


def test_can_watch_decides_who_reads_a_job_and_opens_its_page(host, store):
    job = store.create("report", {"owner": "alice"})
    for path in (f"/api/jobs/{job['job_id']}", f"/jobs/{job['job_id']}"):
        refused = client_of(host).get(path)
        assert refused.status_code == 403, path
    assert client_of(host).get(f"/api/jobs/{job['job_id']}").get_json()["error"]["code"] == "forbidden"

    bob = client_of(host, "bob")
    assert bob.get(f"/api/jobs/{job['job_id']}").get_json()["job_id"] == job["job_id"]
    page = bob.get(f"/jobs/{job['job_id']}")
    assert page.status_code == 200 and 'id="cancel"' not in page.get_data(as_text=True)
    assert page.headers["Cache-Control"] == "private, no-store"  # it depends on who looks


def test_can_cancel_gives_the_owner_cancel_on_the_page_and_the_page_cancels_without_a_token(host, store):
    job = store.create("report", {"owner": "alice"})
    alice = client_of(host, "alice")
    html = alice.get(f"/jobs/{job['job_id']}").get_data(as_text=True)
    assert 'id="cancel"' in html and "data-cancel-token" not in html
    answer = alice.post(f"/api/jobs/{job['job_id']}/cancel", headers=SAME_SITE)
    assert answer.status_code == 202 and answer.get_json()["state"] == "REVOKED"


def test_a_page_of_this_site_may_name_itself_by_referer_alone(host, store):
    job = store.create("report", {"owner": "alice"})
    answer = client_of(host, "alice").post(f"/api/jobs/{job['job_id']}/cancel",
                                         headers={"Referer": f"http://localhost/jobs/{job['job_id']}"})
    assert answer.status_code == 202


@pytest.mark.parametrize("user, headers", [
    (None, SAME_SITE),  # not logged in
    ("bob", SAME_SITE),  # logged in, not the owner
    ("alice", {}),  # the owner, from no page at all (a script with her cookie, or a stripped request)
    ("alice", {"Origin": "http://evil.example"}),  # another site's form or script
    ("alice", {"Origin": "https://localhost"}),  # another scheme is another origin
    ("alice", {"Origin": "null"}),  # a sandboxed or file page
    ("alice", {"Referer": "http://evil.example/jobs"}),
    ("alice", {"Origin": "http://evil.example", "Referer": "http://localhost/"}),
    ("alice", {"Origin": "http://localhost.evil.example"}),  # starts like this site, is another
    ("alice", {"Origin": "http://localhost:8080"}),  # another port is another origin
    ("alice", {"Referer": "http://localhost.evil.example/jobs"}),
], ids=["anonymous", "not-the-owner", "no-origin", "cross-site", "other-scheme", "null-origin",
        "cross-site-referer", "cross-site-origin-wins", "look-alike-host", "other-port",
        "look-alike-referer"])
def test_a_cancel_can_cancel_refuses_is_403_and_the_job_goes_on(host, store, user, headers):
    job = store.create("report", {"owner": "alice"})
    answer = client_of(host, user).post(f"/api/jobs/{job['job_id']}/cancel", headers=headers)
    assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "forbidden"
    assert store.get(job["job_id"])["state"] == PENDING
    assert store.get_field(job["job_id"], "cancel_requested") is False


def test_the_cancel_token_still_cancels_for_whoever_holds_it(host, store):
    token, internal = access.issue()
    job = store.create("report", {"owner": "alice"}, internal=internal)
    answer = client_of(host).post(f"/api/jobs/{job['job_id']}/cancel",
                                headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 202 and answer.get_json()["state"] == "REVOKED"


def test_a_rule_that_raises_is_a_refusal_and_a_logged_error(host, store, caplog):
    job = store.create("report", {"owner": "alice", "broken": True})
    alice = client_of(host, "alice")
    with caplog.at_level(logging.ERROR, logger="notifier.flask.permissions"):
        assert alice.get(f"/api/jobs/{job['job_id']}").status_code == 403
        assert alice.get(f"/jobs/{job['job_id']}").status_code == 403
        answer = alice.post(f"/api/jobs/{job['job_id']}/cancel", headers=SAME_SITE)
    assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "forbidden"
    assert store.get(job["job_id"])["state"] == PENDING
    raised = [record for record in caplog.records if record.name == "notifier.flask.permissions"]
    assert {record.getMessage().split()[0] for record in raised} == {"can_watch", "can_cancel"}
    assert all(record.exc_info and "the app's rule is broken" in str(record.exc_info[1])
               for record in raised)


def test_a_rule_given_to_init_app_that_answers_no_bool_refuses(settings, store, caplog):
    from flask import Flask

    from notifier.flask import JobNotifier

    app = Flask("truthy")
    JobNotifier(background_loops=False).init_app(app, settings=replace(settings, async_mode="threading"),
                                                 can_watch=lambda job: "yes")
    job = store.create("report", {})
    with caplog.at_level(logging.ERROR, logger="notifier.flask.permissions"):
        assert app.test_client().get(f"/api/jobs/{job['job_id']}").status_code == 403
    assert "not a bool" in caplog.text


def test_a_rule_must_be_a_function():
    from flask import Flask

    from notifier.flask import JobNotifier

    with pytest.raises(TypeError, match="can_cancel"):
        JobNotifier(Flask("typo"), can_cancel=True)


# ---- over Socket.IO, served by gunicorn in each async mode --------------------------------------

@pytest.fixture(scope="module", params=list(WEB_SERVERS))
def login_server(request, log_dir, redis_server):
    """tests/login_app.py served by gunicorn with ``params``' worker and async mode."""
    from conftest import REDIS_BASE

    url = f"{REDIS_BASE}/{REDIS_DB_HOST_RULES}"
    redis.Redis.from_url(url).flushdb()
    port = free_port()
    env = process_env(url, SOCKETIO_ASYNC_MODE=request.param, PYTHONPATH=TESTS)
    web = _serving(f"login-app-{request.param}",
                   [os.path.join(BIN, "gunicorn"), *WEB_SERVERS[request.param], "--workers", "1",
                    "--no-control-socket", "--bind", f"127.0.0.1:{port}", "login_app:create_app()"],
                   env, log_dir, port)
    web.store = JobStore.from_settings(replace(Settings.from_env(), redis_url=url))
    web.emitter = SocketIO(message_queue=url, async_mode="threading")  # write-only, as a worker's
    yield web
    web.stop()


def watcher(server, user=None):
    """A connected python-socketio client, with ``user``'s login cookie when given."""
    headers = {}
    if user:
        session = requests.Session()
        assert session.post(f"{server.url}/login/{user}", timeout=10).status_code == 200
        headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in session.cookies.items())
    return Watcher(server.url, headers=headers).connect()


@pytest.mark.e2e
def test_subscribe_is_refused_without_a_login_and_the_refused_client_gets_nothing(login_server):
    job = login_server.store.create("report", {"owner": "alice"})
    stranger, bob = watcher(login_server), watcher(login_server, "bob")
    try:
        refused = stranger.subscribe(job["job_id"])
        assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
        assert bob.subscribe(job["job_id"])["ok"]
        events.record(login_server.store, login_server.emitter, job["job_id"], state="PROGRESS",
                      current=1, total=4, message="step 1 of 4")
        wait_for(lambda: bob.seqs(job["job_id"]) == [1], 10, message="bob to see the progress")
        # One more round trip on the refused connection: anything sent to it before its answer
        # (packets on one websocket arrive in order) would be here by now.
        assert stranger.call("unsubscribe", {"job_id": job["job_id"]}) == {"ok": True}
        assert stranger.job_events(job["job_id"]) == []
        assert stranger.sio.connected
    finally:
        stranger.close()
        bob.close()


@pytest.mark.e2e
def test_a_raising_rule_refuses_logs_and_the_connection_goes_on(login_server):
    broken = login_server.store.create("report", {"owner": "alice", "broken": True})
    fine = login_server.store.create("report", {"owner": "alice"})
    alice = watcher(login_server, "alice")
    try:
        refused = alice.subscribe(broken["job_id"])
        assert refused["ok"] is False and refused["error"]["code"] == "forbidden"
        assert alice.sio.connected
        granted = alice.subscribe(fine["job_id"])  # the same connection still works
        assert granted["ok"] and granted["job"]["job_id"] == fine["job_id"]
    finally:
        alice.close()
    log = login_server.output()
    assert f"can_watch raised for job {broken['job_id']}" in log
    assert "RuntimeError: the app's rule is broken" in log


# ---- in Chromium ----------------------------------------------------------------------------------

@pytest.mark.browser
@pytest.mark.e2e
@pytest.mark.parametrize("login_server", ["threading"], indirect=True)
def test_another_user_watches_without_cancel_and_the_owner_cancels_through_can_cancel(login_server, browser):
    """Two browsers (contexts with their own cookies), each logged in through the app's login."""
    job = login_server.store.create("report", {"owner": "alice"})
    contexts = [browser.new_context() for _ in range(3)]
    problems = []
    try:
        alice, bob, stranger = (context.new_page() for context in contexts)
        for user, page in (("alice", alice), ("bob", bob)):
            assert page.context.request.post(f"{login_server.url}/login/{user}").ok
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.goto(f"{login_server.url}/jobs/{job['job_id']}")
        assert stranger.goto(f"{login_server.url}/jobs/{job['job_id']}").status == 403

        expect(alice.locator("#cancel")).to_be_visible()
        expect(bob.locator("#cancel")).to_have_count(0)
        # The subscribe ack puts seq 0 in the log: from then on the server holds both in the room.
        for page in (alice, bob):
            expect(page.locator("#log li")).to_have_count(1)
        events.record(login_server.store, login_server.emitter, job["job_id"], state="PROGRESS",
                      current=2, total=4, message="step 2 of 4")
        for page in (alice, bob):
            expect(page.locator("#percent")).to_have_text("50%")

        # A running job is asked to stop (its worker stops it at its next step): the request
        # went through, with alice's cookie and no token.
        alice.click("#cancel")
        expect(alice.locator("#cancel")).to_have_text("Cancelling…")
        wait_for(lambda: login_server.store.get_field(job["job_id"], "cancel_requested") is True,
                 10, message="the cancel to be recorded")
        assert "data-cancel-token" not in alice.content()  # no token on this page
        assert problems == []
    finally:
        for context in contexts:
            context.close()
