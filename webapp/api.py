"""The JSON API under ``/api``: submit, read and cancel jobs. No cookie, no CSRF: JSON only."""

import json

import redis
from flask import Blueprint, request, url_for

from notifier import access
from notifier.params import NAME_CHARS, ParamsInvalid
from notifier.store import JobNotFound, JobRefused, is_job_id
from tasks import KINDS

from .extensions import get_store, submit_rate_limit
from .jobs import BrokerUnavailable, UnknownKind, cancel_job, submit_job

bp = Blueprint("api", __name__, url_prefix="/api")

UNAVAILABLE = "job storage or queue is unavailable: nothing was submitted, try again shortly"


def error(status, code, message, **extra):
    return {"error": {"code": code, "message": message, **extra}}, status


def _job_or_404(job_id):
    if not is_job_id(job_id):
        return None
    try:
        return get_store().get(job_id)
    except JobNotFound:
        return None


@bp.post("/jobs")
@submit_rate_limit
def submit():
    """Validate and enqueue a job for a script; nothing is kept or enqueued unless all of it is valid."""
    if not request.is_json:
        return error(415, "unsupported_media_type", "send the job as application/json")
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nested deeper than the parser goes: not a job anyone meant to send
        body = None
    if not isinstance(body, dict):
        return error(400, "invalid_json", 'body must be a JSON object: {"kind": ..., "params": {...}}')
    unknown = sorted(set(body) - {"kind", "params"})
    if unknown:
        name = unknown[0][:NAME_CHARS]
        return error(400, "invalid", f"{name}: unknown field", fields={name: "unknown field"})
    try:
        snapshot, token = submit_job(body.get("kind"), body.get("params", {}))
    except UnknownKind:
        message = f"unknown kind; one of: {', '.join(KINDS)}"
        return error(400, "invalid", f"kind: {message}", fields={"kind": message})
    except ParamsInvalid as exc:
        fields = {("params" if name == "params" else f"params.{name}"): message
                  for name, message in exc.errors.items()}
        return error(400, "invalid", "; ".join(f"{k}: {v}" for k, v in fields.items()), fields=fields)
    except (redis.RedisError, BrokerUnavailable):
        return error(503, "unavailable", UNAVAILABLE)
    # The cancel token is shown this once: the store keeps only its hash.
    return ({**snapshot, "cancel_token": token}, 202,
            {"Location": url_for("api.get_job", job_id=snapshot["job_id"])})


@bp.get("/kinds")
def kinds():
    """Every job kind with its params, bounds, defaults and help: what clients build inputs from."""
    return {"kinds": [kind.describe() for kind in KINDS.values()]}


@bp.get("/jobs/<job_id>")
def get_job(job_id):
    """The job's current snapshot: what a script polls, or reads once after being told of a change."""
    snapshot = _job_or_404(job_id)
    if snapshot is None:
        return error(404, "not_found", f"no job with id {job_id[:64]}")
    return snapshot


@bp.post("/jobs/<job_id>/cancel")
def cancel(job_id):
    """Ask a job to stop; only its submitter may: the job's cancel token as a Bearer header
    (no cookie). A missing and a wrong token get the same answer."""
    if not is_job_id(job_id):
        return error(404, "not_found", f"no job with id {job_id[:64]}")
    try:
        return cancel_job(job_id, access.request_token(request)), 202
    except JobNotFound:
        return error(404, "not_found", f"no job with id {job_id}")
    except access.Forbidden:
        return error(403, "forbidden", access.FORBIDDEN)
    except JobRefused as exc:
        return error(409, "already_final", f"job is already {exc.state}", state=exc.state)


@bp.errorhandler(redis.RedisError)
def redis_down(exc):
    """An outage of the job store is a 503 a script can retry, never a 500."""
    return error(503, "unavailable", "job storage is unavailable, try again shortly")


def http_error_as_json(exc):
    """Any HTTP error under /api/ (404, 405, 413, 429, ...) as the contract's JSON error."""
    code = (exc.name or "error").lower().replace(" ", "_")
    response = exc.get_response()
    response.set_data(json.dumps(error(exc.code, code, exc.description or exc.name)[0]))
    response.content_type = "application/json"
    return response
