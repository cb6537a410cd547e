"""The HTML form: kinds listed from the registry, CSRF, errors beside the field, 303 to the job."""

import re

import pytest

from tasks import KINDS


def csrf_token(client):
    html = client.get("/").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)


@pytest.fixture
def queued(store):
    return lambda: store.redis.llen("celery")


def test_the_form_lists_every_registered_kind_with_its_bounds_and_defaults(client):
    html = client.get("/").get_data(as_text=True)
    for name, kind in KINDS.items():
        assert f'<option value="{name}"' in html
        for param in kind.params.values():
            assert f'name="{name}-{param.name}"' in html
    assert re.search(r'<input[^>]*max="10000"[^>]*min="1"[^>]*name="sleep-steps"[^>]*value="10"', html)


def test_a_valid_submission_redirects_303_to_the_job_page(client, queued):
    response = client.post("/jobs", data={"csrf_token": csrf_token(client), "kind": "sleep",
                                          "sleep-steps": "4", "sleep-interval": "0.1"})
    assert response.status_code == 303
    job_id = re.fullmatch(r"/jobs/([0-9a-f-]{36})", response.headers["Location"]).group(1)
    assert queued() == 1
    page = client.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert job_id in page.get_data(as_text=True)


def test_fields_of_other_kinds_are_ignored(client, queued):
    response = client.post("/jobs", data={"csrf_token": csrf_token(client), "kind": "primes",
                                          "primes-limit": "1000", "sleep-steps": "nonsense"})
    assert response.status_code == 303 and queued() == 1


@pytest.mark.parametrize("fields, bad_field, fragment", [
    ({"kind": "sleep", "sleep-steps": "0"}, "sleep-steps", "between 1 and 10000"),
    ({"kind": "sleep", "sleep-steps": "abc"}, "sleep-steps", "integer"),
    ({"kind": "sleep", "sleep-steps": "3", "sleep-fail_at": "9"}, "sleep-fail_at", "greater than steps"),
    ({"kind": "primes"}, "primes-limit", "required"),
    ({"kind": "sleep", "sleep-steps": "10001"}, "sleep-steps", "between 1 and 10000"),
    ({"kind": "sleep", "sleep-interval": "60.5"}, "sleep-interval", "between 0 and 60"),
    ({"kind": "sleep", "sleep-steps": "9" * 400}, "sleep-steps", "between 1 and 10000"),
    ({"kind": "sleep", "sleep-interval": "9" * 400}, "sleep-interval", "finite"),
    ({"kind": "sleep", "sleep-interval": "nan"}, "sleep-interval", "finite"),
    ({"kind": "primes", "primes-limit": "9" * 400}, "primes-limit", "between 2 and 100000000"),
])
def test_invalid_params_are_a_400_with_the_error_beside_the_field(client, queued, fields, bad_field,
                                                                  fragment):
    response = client.post("/jobs", data={"csrf_token": csrf_token(client), **fields})
    html = response.get_data(as_text=True)
    error = re.search(rf'<p class="error" data-field="{bad_field}">([^<]*)</p>', html)
    assert response.status_code == 400
    assert error and fragment in error.group(1).lower()
    assert queued() == 0


def test_each_bound_itself_is_accepted(client, queued):
    response = client.post("/jobs", data={"csrf_token": csrf_token(client), "kind": "sleep",
                                          "sleep-steps": "10000", "sleep-interval": "60"})
    assert response.status_code == 303 and queued() == 1
    response = client.post("/jobs", data={"csrf_token": csrf_token(client), "kind": "sleep",
                                          "sleep-steps": "1", "sleep-interval": "0"})
    assert response.status_code == 303 and queued() == 2


def test_an_unknown_kind_is_a_400(client, queued):
    response = client.post("/jobs", data={"csrf_token": csrf_token(client), "kind": "rm-rf"})
    assert response.status_code == 400 and queued() == 0
    assert "Not a valid choice" in response.get_data(as_text=True)


def test_a_submission_without_the_csrf_token_is_refused(client, queued):
    response = client.post("/jobs", data={"kind": "sleep", "sleep-steps": "3"})
    assert response.status_code == 400 and queued() == 0


def test_the_job_page_of_an_unknown_or_malformed_id_is_404(client):
    assert client.get("/jobs/6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11").status_code == 404
    assert client.get("/jobs/../../etc/passwd").status_code == 404
    assert client.get("/jobs/x").status_code == 404


def test_pages_carry_security_headers(client):
    response = client.get("/")
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


def test_a_forced_transport_is_kept_from_the_form_to_the_job_page(client, queued):
    html = client.get("/?transport=polling").get_data(as_text=True)
    assert 'action="/jobs?transport=polling"' in html
    response = client.post("/jobs?transport=polling", data={
        "csrf_token": csrf_token(client), "kind": "sleep", "sleep-steps": "2"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith("?transport=polling")
    assert 'action="/jobs"' in client.get("/?transport=carrier-pigeon").get_data(as_text=True)
