"""Who may cancel: the cancel token of the API and the form's session, through Flask's client on a
real Redis. A job id lets anyone watch; only the submitter's token cancels."""

import hmac
import re

import pytest
import redis

from notifier import access
from notifier.store import PENDING, STARTED, SUCCESS

UNKNOWN = "6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def submit(client, steps=3):
    response = client.post("/api/jobs", json={"kind": "sleep", "params": {"steps": steps}})
    assert response.status_code == 202
    return response.get_json()


def unchanged(store, job):
    """The job is as it was created: not revoked, not flagged, no event added."""
    snapshot = store.get(job["job_id"])
    return (snapshot["state"], snapshot["seq"], store.get_field(job["job_id"], "cancel_requested")) \
        == (PENDING, 0, False)


# ---- the token itself -------------------------------------------------------------------------

def test_a_token_has_256_random_bits_and_the_store_keeps_only_its_hash():
    token, fields = access.issue()
    other, _ = access.issue()
    assert token != other and len(token) >= 43  # 32 bytes, base64url
    assert list(fields) == [access.HASH_FIELD] and token not in fields[access.HASH_FIELD]
    assert access.matches(token, fields[access.HASH_FIELD])
    assert not access.matches(other, fields[access.HASH_FIELD])
    assert not access.matches(None, fields[access.HASH_FIELD]) and not access.matches(token, None)


def test_tokens_are_compared_in_constant_time(monkeypatch):
    compared, real = [], hmac.compare_digest

    def compare_digest(a, b):
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(access.hmac, "compare_digest", compare_digest)
    token, fields = access.issue()
    assert access.matches(token, fields[access.HASH_FIELD])
    assert not access.matches("x" + token, fields[access.HASH_FIELD])
    assert len(compared) == 2


@pytest.mark.parametrize("header, token", [
    ("Bearer abc-DEF_123.~+/=", "abc-DEF_123.~+/="),
    ("bearer abc", "abc"),
    (None, None),
    ("", None),
    ("Bearer", None),
    ("Bearer ", None),
    ("Bearer  abc", None),
    ("Bearerabc", None),
    ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", None),
    ("abc", None),
    ("Bearer abc def", None),
    ("Bearer abc\n", None),
    ("Bearer a=b", None),
    ("Bearer ábc", None),
    ("Bearer " + "a" * 257, None),
    ("Bearer abc, Bearer def", None),
])
def test_only_a_well_formed_bearer_header_carries_a_token(header, token):
    assert access.bearer_token(header) == token


# ---- the API ----------------------------------------------------------------------------------

def test_the_token_is_shown_once_and_never_in_a_snapshot_or_the_store(client, store):
    job = submit(client)
    token = job.pop("cancel_token")
    assert "cancel_token" not in client.get(f"/api/jobs/{job['job_id']}").get_json()
    kept = store.get_field(job["job_id"], access.HASH_FIELD)
    assert access.matches(token, kept) and kept != token
    # The hash is internal: in neither the snapshot nor the history.
    for shown in (client.get(f"/api/jobs/{job['job_id']}").get_data(as_text=True),
                  repr(store.history(job["job_id"]))):
        assert kept not in shown and access.HASH_FIELD not in shown
    for key in store.redis.keys("*"):
        assert token not in repr(_everything_in(store.redis, key)), key
    assert token not in client.get("/metrics").get_data(as_text=True)


def _everything_in(redis, key):
    kind = redis.type(key)
    read = {"string": redis.get, "hash": redis.hgetall, "list": lambda k: redis.lrange(k, 0, -1),
            "set": redis.smembers, "zset": lambda k: redis.zrange(k, 0, -1, withscores=True),
            "stream": redis.xrange}
    return read[kind](key)


def refusals(job, other):
    """Every way of asking to cancel ``job`` without its capability: (headers, query string)."""
    token = job["cancel_token"]
    return {
        "no header": ({}, ""),
        "wrong token": (bearer("x" * 43), ""),
        "another job's token": (bearer(other["cancel_token"]), ""),
        "empty bearer": ({"Authorization": "Bearer "}, ""),
        "other scheme": ({"Authorization": f"Basic {token}"}, ""),
        "no scheme": ({"Authorization": token}, ""),
        "two tokens": ({"Authorization": f"Bearer {token} {token}"}, ""),
        "the token's hash": (bearer("0" * 64), ""),
        "token in the query": ({}, f"?cancel_token={token}"),
        "token as ?token": ({}, f"?token={token}"),
        "token as ?access_token": ({}, f"?access_token={token}"),
        "token in the query beside the header": (bearer(token), f"?cancel_token={token}"),
    }


def test_every_refusal_is_the_same_403_and_the_job_goes_on(client, store):
    job, other = submit(client), submit(client)
    answers = {}
    for name, (headers, query) in refusals(job, other).items():
        response = client.post(f"/api/jobs/{job['job_id']}/cancel{query}", headers=headers)
        assert response.status_code == 403, name
        answers[name] = response.get_json()
        assert unchanged(store, job), name
    assert answers["no header"]["error"]["code"] == "forbidden"
    assert "Bearer" in answers["no header"]["error"]["message"]
    assert all(answer == answers["no header"] for answer in answers.values()), answers


def test_the_submitter_cancels_a_queued_job_at_once_and_a_running_one_is_asked_to_stop(client, store):
    queued, running = submit(client), submit(client)
    store.update(running["job_id"], state=STARTED)

    answer = client.post(f"/api/jobs/{queued['job_id']}/cancel", headers=bearer(queued["cancel_token"]))
    assert answer.status_code == 202 and answer.get_json()["state"] == "REVOKED"
    answer = client.post(f"/api/jobs/{running['job_id']}/cancel", headers=bearer(running["cancel_token"]))
    assert answer.status_code == 202 and answer.get_json()["state"] == STARTED
    assert store.get_field(running["job_id"], "cancel_requested") is True


def test_a_final_job_is_409_for_its_submitter_and_403_for_anyone_else(client, store):
    job = submit(client)
    store.update(job["job_id"], state=SUCCESS)
    assert client.post(f"/api/jobs/{job['job_id']}/cancel").status_code == 403
    answer = client.post(f"/api/jobs/{job['job_id']}/cancel", headers=bearer(job["cancel_token"]))
    assert answer.status_code == 409 and answer.get_json()["error"]["code"] == "already_final"


def test_an_unknown_job_is_404_with_or_without_a_token(client):
    job = submit(client)
    for headers in ({}, bearer(job["cancel_token"])):
        answer = client.post(f"/api/jobs/{UNKNOWN}/cancel", headers=headers)
        assert answer.status_code == 404 and answer.get_json()["error"]["code"] == "not_found"


def test_a_job_recorded_without_a_token_cannot_be_cancelled_over_http(client, store):
    job = store.create("sleep", {"steps": 3})
    for headers in ({}, bearer("x" * 43), {"Authorization": "Bearer "}):
        assert client.post(f"/api/jobs/{job['job_id']}/cancel", headers=headers).status_code == 403
    assert store.get(job["job_id"])["state"] == PENDING


def test_internal_fields_cannot_replace_the_snapshots(store):
    with pytest.raises(ValueError):
        store.create("sleep", {}, internal={"state": "SUCCESS"})


# ---- the form and the job page ----------------------------------------------------------------

def csrf_token(client):
    html = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


def submit_form(client):
    response = client.post("/jobs", data={"csrf_token": csrf_token(client), "kind": "sleep",
                                          "sleep-steps": "4", "sleep-interval": "0.1"})
    assert response.status_code == 303
    return response.headers["Location"].rsplit("/", 1)[1]


def page_token(client, job_id):
    """The cancel token the job page hands its script, or None; and whether it has a Cancel button."""
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    found = re.search(r'data-cancel-token="([^"]+)"', html)
    return (found.group(1) if found else None), 'id="cancel"' in html, response.headers


def test_the_submitting_browser_gets_cancel_and_another_browser_only_watches(app, store):
    submitter, other = app.test_client(), app.test_client()
    job_id = submit_form(submitter)

    token, button, headers = page_token(submitter, job_id)
    assert token and button
    assert "no-store" in headers["Cache-Control"]  # the page carries this browser's capability
    assert page_token(other, job_id)[:2] == (None, False)
    assert other.post(f"/api/jobs/{job_id}/cancel").status_code == 403
    # A session cookie is no capability on the API: only the Bearer token is.
    assert submitter.post(f"/api/jobs/{job_id}/cancel").status_code == 403
    assert store.get(job_id)["state"] == PENDING

    answer = submitter.post(f"/api/jobs/{job_id}/cancel", headers=bearer(token))
    assert answer.status_code == 202 and answer.get_json()["state"] == "REVOKED"


def test_the_session_keeps_the_tokens_of_its_20_newest_jobs(app):
    browser = app.test_client()
    job_ids = [submit_form(browser) for _ in range(23)]
    cookie = browser.get_cookie("session")
    assert len(cookie.value) < 3000  # browsers drop cookies over 4 KB
    assert [page_token(browser, job_id)[1] for job_id in job_ids] == [False] * 3 + [True] * 20


# ---- a real run: no token anywhere but with its holder -----------------------------------------

@pytest.mark.e2e
def test_no_token_appears_in_any_event_the_history_the_store_metrics_or_a_log_line(processes, tmp_path):
    """Three jobs submitted the three ways (API, form, terminal client), watched and cancelled by
    their submitters on real gunicorn + celery with every log turned up; then every Socket.IO
    packet a watcher received, every job's history, the whole Redis, /metrics and every log line
    are searched for the tokens."""
    import json
    import subprocess
    import sys

    import requests

    from clients import Watcher
    from processes import ROOT, free_port, process_env, wait_for

    redis_port = free_port()
    processes.redis(redis_port)
    env = process_env(f"redis://127.0.0.1:{redis_port}/0", HEARTBEAT_INTERVAL=1,
                      SOCKETIO_LOGGER=1, ENGINEIO_LOGGER=1,
                      GUNICORN_CMD_ARGS="--access-logfile - --log-level debug")
    web, worker = processes.web(env), processes.worker(env, concurrency=3)
    packets = []
    watcher = Watcher(web.url, transports=("polling", "websocket"))
    record = watcher._record_packet
    watcher._record_packet = lambda text: (packets.append(text), record(text))
    watcher.connect()
    cli_env = {**env, "XDG_STATE_HOME": str(tmp_path)}

    def jobclient(*args):
        run = subprocess.run([sys.executable, "-m", "jobclient", "--url", web.url, *args], cwd=ROOT,
                             env=cli_env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout + run.stderr

    try:
        by_api = requests.post(f"{web.url}/api/jobs", json={"kind": "sleep", "params": {
            "steps": 1000, "interval": 0.05}}, timeout=10).json()
        browser = requests.Session()
        form = browser.get(f"{web.url}/", timeout=10).text
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
        page = browser.post(f"{web.url}/jobs", timeout=10, data={
            "csrf_token": csrf, "kind": "sleep", "sleep-steps": "1000", "sleep-interval": "0.05"})
        by_form = {"job_id": page.url.rsplit("/", 1)[1],
                   "cancel_token": re.search(r'data-cancel-token="([^"]+)"', page.text).group(1)}
        printed = jobclient("submit", "sleep", "--steps", "1000", "--interval", "0.05")
        [[job_id, token]] = json.loads((tmp_path / "jobclient" / "cancel-tokens.json").read_text())
        by_cli = {"job_id": job_id, "cancel_token": token}
        jobs = [by_api, by_form, by_cli]
        for job in jobs:
            assert watcher.subscribe(job["job_id"], last_seq=-1)["ok"]
        wait_for(lambda: all(len(watcher.seqs(job["job_id"])) >= 3 for job in jobs), 30,
                 message="every job to be under way")

        for job in (by_api, by_form):  # as a script and as the page's script do
            answer = requests.post(f"{web.url}/api/jobs/{job['job_id']}/cancel", timeout=10,
                                   headers={"Authorization": f"Bearer {job['cancel_token']}"})
            assert answer.status_code == 202
        printed += jobclient("cancel", by_cli["job_id"])
        for job in jobs:
            assert watcher.wait_finished(job["job_id"])["state"] == "REVOKED"
        wait_for(lambda: len(watcher.heartbeats()) >= 2, 10, message="heartbeats")
        wait_for(lambda: all(f"[{job['job_id']}] ignored" in worker.output() for job in jobs), 20,
                 message="the worker to log each cancelled job")
    finally:
        watcher.close()

    store = redis.Redis(port=redis_port, decode_responses=True)
    stored = {key: _everything_in(store, key) for key in store.keys("*")}
    places = {
        "Socket.IO packets": "\n".join(packets),
        "Redis (histories, job hashes, queues)": repr(stored),
        "snapshots": "\n".join(requests.get(f"{web.url}/api/jobs/{job['job_id']}", timeout=5).text
                               for job in jobs),
        "/metrics": requests.get(f"{web.url}/metrics", timeout=5).text,
        "web log": web.output(),
        "worker log": worker.output(),
        "the client's output": printed,
    }
    for job in jobs:  # the search covers real material: each job is in each place that names it
        for place in ("Socket.IO packets", "snapshots", "web log", "worker log"):
            assert job["job_id"] in places[place], place
        assert any(f"{job['job_id']}" in key for key in stored)
    leaks = [(place, job["job_id"]) for place, text in places.items() for job in jobs
             if job["cancel_token"] in text]
    assert leaks == []
