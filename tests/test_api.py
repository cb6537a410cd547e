"""The JSON API through Flask's test client, on a real Redis: answers, errors, nothing enqueued."""

import pytest

from notifier.store import REVOKED, SUCCESS

UNKNOWN = "6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11"


@pytest.fixture
def queued(store):
    """How many task messages wait in the broker's default queue."""
    return lambda: store.redis.llen("celery")


def test_submit_answers_202_with_the_snapshot_and_its_location(client, queued):
    response = client.post("/api/jobs", json={"kind": "sleep", "params": {"steps": 3}})
    assert response.status_code == 202
    job = response.get_json()
    token = job.pop("cancel_token")  # shown this once, beside the snapshot
    assert isinstance(token, str) and len(token) >= 22
    assert response.headers["Location"] == f"/api/jobs/{job['job_id']}"
    assert job["state"] == "PENDING" and job["seq"] == 0
    assert job["params"] == {"steps": 3, "interval": 0.5}
    assert queued() == 1
    assert client.get(f"/api/jobs/{job['job_id']}").get_json() == job


# Every bad body the API must refuse, naming the field: the one table of them.
BAD_BODIES = [
    ({"kind": "nope", "params": {}}, "kind"),
    ({"kind": ["sleep"], "params": {}}, "kind"),
    ({"params": {}}, "kind"),
    ({"kind": "sleep", "params": {"steps": 0}}, "params.steps"),
    ({"kind": "sleep", "params": {"steps": 10001}}, "params.steps"),
    ({"kind": "sleep", "params": {"steps": 2.5}}, "params.steps"),
    ({"kind": "sleep", "params": {"steps": "ten"}}, "params.steps"),
    ({"kind": "sleep", "params": {"steps": "10"}}, "params.steps"),
    ({"kind": "sleep", "params": {"steps": True}}, "params.steps"),
    ({"kind": "sleep", "params": {"interval": 61}}, "params.interval"),
    ({"kind": "sleep", "params": {"interval": -1}}, "params.interval"),
    ({"kind": "sleep", "params": {"steps": 5, "fail_at": 6}}, "params.fail_at"),
    ({"kind": "sleep", "params": {"color": "red"}}, "params.color"),
    ({"kind": "sleep", "params": {"shell": "rm -rf /"}}, "params.shell"),
    ({"kind": "sleep", "params": [1]}, "params"),
    ({"kind": "sleep", "params": []}, "params"),
    ({"kind": "primes", "params": {}}, "params.limit"),
    ({"kind": "primes", "params": {"limit": 100_000_001}}, "params.limit"),
    ({"kind": "primes", "params": {"limit": 10**9}}, "params.limit"),
    ({"kind": "sleep", "params": {}, "priority": 1}, "priority"),
    ({"kind": "sleep", "params": {"interval": 10**400}}, "params.interval"),  # beyond a float
    ({"kind": "sleep", "params": {"steps": 10**400}}, "params.steps"),
    ({"kind": "primes", "params": {"limit": 100_000_000, "x" * 5000: 1}}, "params." + "x" * 64),
]


@pytest.mark.parametrize("body, field", BAD_BODIES)
def test_bad_input_is_a_400_naming_the_field_and_keeps_and_enqueues_nothing(client, store, queued,
                                                                           body, field):
    response = client.post("/api/jobs", json=body)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid"
    assert field in error["fields"] and error["message"].startswith(field)
    assert queued() == 0 and store.redis.keys("notifier:job:*") == []


def test_a_body_that_is_not_a_json_object_is_a_400(client, queued):
    for data in ("[1, 2]", "{not json", '"sleep"'):
        response = client.post("/api/jobs", data=data, content_type="application/json")
        assert response.status_code == 400
        assert response.get_json()["error"]["code"] == "invalid_json"
    assert queued() == 0


def test_json_nested_deeper_than_the_parser_goes_is_a_400(client, queued):
    for depth in (1000, 30_000):  # 60 KB: under the 64 KB the app takes
        for data in ("[" * depth + "]" * depth, '{"kind": ' + "[" * depth + "]" * depth + "}"):
            response = client.post("/api/jobs", data=data, content_type="application/json")
            assert response.status_code == 400
            assert response.get_json()["error"]["code"] == "invalid_json"
    assert queued() == 0


def test_an_error_for_thousands_of_unknown_names_stays_short(client, queued):
    names = {f"p{n}": 1 for n in range(5000)}  # about 60 KB, under the 64 KB the app takes
    for body in ({"kind": "sleep", "params": names}, {"kind": "sleep", **names},
                 {"kind": "sleep", "y" * 60_000: 1}):
        response = client.post("/api/jobs", json=body)
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert error["code"] == "invalid" and error["fields"]
        assert len(response.get_data()) < 2500, len(response.get_data())
    assert queued() == 0


def test_only_json_is_accepted_so_a_cross_site_form_cannot_submit(client, queued):
    response = client.post("/api/jobs", data={"kind": "sleep"})
    assert response.status_code == 415
    assert response.get_json()["error"]["code"] == "unsupported_media_type"
    assert queued() == 0


@pytest.mark.parametrize("job_id", [UNKNOWN, "not-a-job", "1" * 300])
def test_unknown_or_malformed_ids_are_404_in_json(client, job_id):
    for response in (client.get(f"/api/jobs/{job_id}"), client.post(f"/api/jobs/{job_id}/cancel")):
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"


def test_unknown_api_routes_and_methods_answer_json(client):
    assert client.get("/api/nothing").get_json()["error"]["code"] == "not_found"
    response = client.delete("/api/jobs")
    assert response.status_code == 405 and response.get_json()["error"]["code"] == "method_not_allowed"


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def test_cancelling_a_queued_job_revokes_it_and_a_second_cancel_is_409(client, store):
    job = client.post("/api/jobs", json={"kind": "sleep", "params": {}}).get_json()
    response = client.post(f"/api/jobs/{job['job_id']}/cancel", headers=bearer(job["cancel_token"]))
    assert response.status_code == 202
    assert response.get_json()["state"] == REVOKED
    assert "cancel_token" not in response.get_json()
    assert store.get(job["job_id"])["state"] == REVOKED
    again = client.post(f"/api/jobs/{job['job_id']}/cancel", headers=bearer(job["cancel_token"]))
    assert again.status_code == 409
    assert again.get_json()["error"]["code"] == "already_final"


def test_cancel_of_a_finished_job_is_409_for_its_submitter(client, store):
    job = client.post("/api/jobs", json={"kind": "sleep", "params": {}}).get_json()
    store.update(job["job_id"], state=SUCCESS)
    assert client.post(f"/api/jobs/{job['job_id']}/cancel",
                       headers=bearer(job["cancel_token"])).status_code == 409


def test_with_the_default_limit_one_address_submits_60_jobs_a_minute(client, queued):
    import re

    accepted = [client.post("/api/jobs", json={"kind": "sleep", "params": {"steps": 1}}).status_code
                for _ in range(60)]
    assert accepted == [202] * 60
    api = client.post("/api/jobs", json={"kind": "sleep", "params": {"steps": 1}})
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"',
                     client.get("/").get_data(as_text=True)).group(1)
    form = client.post("/jobs", data={"csrf_token": csrf, "kind": "sleep", "sleep-steps": "1"})
    for refused in (api, form):  # the form and the API count against the same limit
        assert refused.status_code == 429
        # Within the minute's window (Flask-Limiter rounds its reset time up by a second).
        assert 0 < int(refused.headers["Retry-After"]) <= 61
    assert api.get_json()["error"]["code"] == "too_many_requests"
    assert queued() == 60


def test_healthz_says_ok_when_redis_answers(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"


def test_healthz_says_unavailable_without_naming_where_redis_is(store):
    from dataclasses import replace

    from processes import free_port
    from notifier.settings import Settings
    from webapp import create_app

    unreachable = f"redis://:hunter2@127.0.0.1:{free_port()}/0"
    app = create_app(replace(Settings.from_env(), redis_url=unreachable, async_mode="threading"),
                     background_loops=False)
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["status"] == "unavailable"
    assert response.get_json()["redis"] == "unreachable"
    body = response.get_data(as_text=True)
    assert "hunter2" not in body and "127.0.0.1" not in body


def _samples(client):
    """Metric samples by name and labels, from the Prometheus text of /metrics."""
    samples = {}
    for line in client.get("/metrics").get_data(as_text=True).splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    return samples


def test_metrics_expose_the_contract_names_and_count_submissions(client):
    before = _samples(client)
    for name in ("notifier_clients_connected", "notifier_rooms_open",
                 'notifier_jobs_submitted_total{kind="sleep"}',
                 'notifier_events_relayed_total{event="progress"}',
                 'notifier_events_relayed_total{event="finished"}'):
        assert name in before, name
    client.post("/api/jobs", json={"kind": "sleep", "params": {}})
    client.post("/api/jobs", json={"kind": "sleep", "params": {"steps": -1}})
    after = _samples(client)
    submitted = 'notifier_jobs_submitted_total{kind="sleep"}'
    assert after[submitted] == before[submitted] + 1


def test_kinds_lists_each_kind_with_its_params_bounds_defaults_and_help(client):
    from tasks import KINDS

    kinds = {kind["name"]: kind for kind in client.get("/api/kinds").get_json()["kinds"]}
    assert set(kinds) == set(KINDS) >= {"sleep", "primes"}
    steps = {param["name"]: param for param in kinds["sleep"]["params"]}["steps"]
    assert steps == {"name": "steps", "type": "int", "min": 1, "max": 10000, "default": 10,
                     "required": True, "help": "how many steps to report"}
    fail_at = {param["name"]: param for param in kinds["sleep"]["params"]}["fail_at"]
    assert (fail_at["required"], fail_at["default"]) == (False, None)
    assert kinds["primes"]["title"] == "Count primes" and kinds["primes"]["help"]
