"""The HTTP half of the client: the kinds a server offers, submitting a job and cancelling one."""

import requests

TIMEOUT = 15


class CliError(Exception):
    """A problem the user can act on; printed without a traceback."""


def _request(method, url, **kwargs):
    try:
        return requests.request(method, url, timeout=TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise CliError(f"cannot reach {url.split('/api/')[0]}: {exc}") from None


def _error_message(response):
    try:
        return response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return response.text.strip()[:200] or response.reason


def kinds(url):
    """The server's job kinds with their params (``GET /api/kinds``)."""
    response = _request("GET", f"{url}/api/kinds")
    if response.status_code != 200:
        raise CliError(f"cannot list the job kinds ({response.status_code}): {_error_message(response)}")
    return response.json()["kinds"]


def submit(url, kind, params):
    """POST the job to the API; returns its first snapshot or raises CliError with the server's words."""
    response = _request("POST", f"{url}/api/jobs", json={"kind": kind, "params": params})
    if response.status_code == 202:
        return response.json()
    message = _error_message(response)
    if response.status_code == 429:
        message += f" (retry after {response.headers.get('Retry-After', '?')} s)"
    raise CliError(f"job not submitted ({response.status_code}): {message}")


def cancel(url, job_id, token):
    """Ask the server to stop a job, presenting its cancel token; returns the job's snapshot."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = _request("POST", f"{url}/api/jobs/{job_id}/cancel", headers=headers)
    if response.status_code == 202:
        return response.json()
    message = _error_message(response)
    if response.status_code == 403:
        message = ("only the job's submitter may cancel it: no cancel token was saved for it here; "
                   "give it with --token" if token is None else "that is not this job's cancel token")
    raise CliError(f"job not cancelled ({response.status_code}): {message}")
