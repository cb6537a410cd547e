"""``notifier.flask.JobNotifier`` as a Flask extension: per-app state, nothing started until the
app serves, an app's own SocketIO and namespaces kept, routes under a prefix. Through Flask's and
Flask-SocketIO's test clients, with the suite's real Redis."""

import threading
from dataclasses import replace

import pytest
import socketio as socketio_client
from flask import Flask
from flask_socketio import SocketIO
from werkzeug.serving import make_server

from notifier.flask import JobNotifier


@pytest.fixture
def threading_settings(settings):
    return replace(settings, async_mode="threading")


def test_two_apps_in_one_process_each_have_their_own_notifier(threading_settings, store):
    first, second = Flask("first"), Flask("second")
    shared = JobNotifier(url_prefix="/one", background_loops=False)
    shared.init_app(first, settings=threading_settings)
    shared.init_app(second, settings=threading_settings, url_prefix="/two")
    one, two = first.extensions["notifier"], second.extensions["notifier"]
    assert one is not two and one.socketio is not two.socketio and one.relay is not two.relay
    job = store.create("report", {})
    assert first.test_client().get(f"/one/api/jobs/{job['job_id']}").json["job_id"] == job["job_id"]
    assert second.test_client().get(f"/two/api/jobs/{job['job_id']}").json["job_id"] == job["job_id"]
    assert first.test_client().get(f"/two/api/jobs/{job['job_id']}").status_code == 404


def test_building_it_starts_nothing_and_the_first_request_starts_the_loops_once(threading_settings):
    before = threading.active_count()
    app = Flask("lazy")
    # Its loops run on for the rest of the session: give them a store of their own to look at.
    JobNotifier(app, settings=replace(threading_settings, key_prefix="lazy-loops:"))
    notifier = app.extensions["notifier"]
    assert threading.active_count() == before and notifier.loops == []
    client = app.test_client()
    client.get("/api/jobs/nope")
    loops = list(notifier.loops)
    assert len(loops) == 2  # the stall check and the heartbeat
    client.get("/api/jobs/nope")
    assert notifier.loops == loops


def test_an_apps_own_socketio_keeps_its_namespaces(threading_settings, store):
    """A real server (werkzeug, threading mode) and a real python-socketio client on two namespaces."""
    app = Flask("own")
    socketio = SocketIO(app, async_mode="threading")

    @socketio.on("hello", namespace="/chat")
    def hello(data):
        return {"you said": data}

    notifier = JobNotifier(app, socketio=socketio, settings=threading_settings, background_loops=False)
    assert notifier.socketio is socketio
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    client = socketio_client.Client()
    try:
        client.connect(f"http://127.0.0.1:{server.port}", namespaces=["/chat", "/jobs"],
                       transports=["polling"], wait_timeout=10)
        assert client.call("hello", "hi", namespace="/chat", timeout=10) == {"you said": "hi"}
        job = store.create("report", {})
        ack = client.call("subscribe", {"job_id": job["job_id"]}, namespace="/jobs", timeout=10)
        assert ack["ok"] and ack["job"]["job_id"] == job["job_id"]
        invalid = client.call("subscribe", {"job_id": "nope"}, namespace="/jobs", timeout=10)
        assert invalid["error"]["code"] == "invalid"
    finally:
        client.disconnect()
        server.shutdown()


def test_the_job_page_and_cancel_live_under_the_prefix(threading_settings, store):
    from notifier import access

    token, internal = access.issue()
    job = store.create("report", {"n": 1}, internal=internal)
    app = Flask("prefixed")
    JobNotifier(app, url_prefix="/progress", settings=threading_settings, background_loops=False,
                cancel_token_of=lambda job_id: token if job_id == job["job_id"] else None)
    client = app.test_client()
    page = client.get(f"/progress/jobs/{job['job_id']}")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "private, no-store"
    html = page.get_data(as_text=True)
    assert "/progress/notifier/static/vendor/socket.io.min.js" in html
    assert f'data-cancel-url="/progress/api/jobs/{job["job_id"]}/cancel"' in html
    assert f'data-cancel-token="{token}"' in html and 'id="cancel"' in html
    assert client.get("/progress/notifier/static/vendor/socket.io.min.js").status_code == 200
    assert client.get(f"/jobs/{job['job_id']}").status_code == 404
    cancel = f"/progress/api/jobs/{job['job_id']}/cancel"
    assert client.post(cancel).json["error"]["code"] == "forbidden"
    cancelled = client.post(cancel, headers={"Authorization": f"Bearer {token}"})
    assert cancelled.status_code == 202 and cancelled.json["state"] == "REVOKED"
    again = client.post(cancel, headers={"Authorization": f"Bearer {token}"})
    assert again.status_code == 409 and again.json["error"]["code"] == "already_final"
    assert client.get("/progress/api/jobs/0").json["error"]["code"] == "not_found"


def test_without_a_token_for_the_viewer_the_page_has_no_cancel(threading_settings, store):
    app = Flask("watch-only")
    JobNotifier(app, settings=threading_settings, background_loops=False)
    job = store.create("report", {})
    page = app.test_client().get(f"/jobs/{job['job_id']}")
    assert page.status_code == 200 and "Cache-Control" not in page.headers
    assert 'id="cancel"' not in page.get_data(as_text=True)


def test_an_apps_handler_that_raises_keeps_its_traceback_while_junk_packets_are_one_line(caplog):
    """The notifier quiets what malformed packets make Engine.IO log, not the app's own errors."""
    import functools
    import logging
    import sys

    from socketio import packet

    from notifier.flask.packet_log import MalformedPacketLog

    def record_of(call):
        """What Engine.IO logs when ``call`` raises (its traceback starts at the call)."""
        try:
            call()
        except Exception:
            kind, exc, tb = sys.exc_info()
            return logging.LogRecord("engineio.server", logging.ERROR, __file__, 1,
                                     "message handler error", (), (kind, exc, tb.tb_next))

    def apps_handler():
        raise RuntimeError("the app's own bug")

    junk_packet = functools.partial(packet.Packet, encoded_packet="x-not-a-packet")

    quiet = MalformedPacketLog()
    kept = record_of(apps_handler)
    assert quiet.filter(kept) and kept.exc_info and kept.levelno == logging.ERROR
    dropped = record_of(junk_packet)
    assert quiet.filter(dropped) and dropped.exc_info is None and dropped.levelno == logging.WARNING
