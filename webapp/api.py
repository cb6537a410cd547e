"""The JSON API under ``/api``: submit jobs and list their kinds (reading and cancelling a job is
the notifier's). No cookie, no CSRF: JSON only."""

import redis
from flask import Blueprint, request, url_for

from notifier.flask.views import error
from notifier.params import NAME_CHARS, ParamsInvalid
from tasks import KINDS

from .extensions import submit_rate_limit
from .jobs import BrokerUnavailable, UnknownKind, submit_job

bp = Blueprint("api", __name__, url_prefix="/api")

UNAVAILABLE = "job storage or queue is unavailable: nothing was submitted, try again shortly"


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
            {"Location": url_for("notifier.get_job", job_id=snapshot["job_id"])})


@bp.get("/kinds")
def kinds():
    """Every job kind with its params, bounds, defaults and help: what clients build inputs from."""
    return {"kinds": [kind.describe() for kind in KINDS.values()]}


@bp.errorhandler(redis.RedisError)
def redis_down(exc):
    """An outage of the job store is a 503 a script can retry, never a 500."""
    return error(503, "unavailable", "job storage is unavailable, try again shortly")

