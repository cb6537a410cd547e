"""The notifier's pages and JSON endpoints, in the ``notifier`` blueprint (registered under the
app's ``url_prefix``): the job page, reading a job and cancelling it; its templates and the browser's files
(``static/``, the socket.io client in ``static/vendor/``, put there when the package is built).

``/api/…`` answers are JSON, errors too: ``{"error": {"code": …, "message": …}}``.
"""

import redis
from flask import Blueprint, abort, current_app, render_template, request
from werkzeug.exceptions import HTTPException

from notifier import access, events
from notifier.store import JobNotFound, JobRefused, is_job_id

from .permissions import WATCH_FORBIDDEN, same_origin

bp = Blueprint("notifier", __name__, static_folder="static", static_url_path="/notifier/static",
               template_folder="templates")


def _notifier():
    return current_app.extensions["notifier"]


def error(status, code, message, **extra):
    return {"error": {"code": code, "message": message, **extra}}, status


@bp.get("/jobs/<job_id>")
def job_page(job_id):
    """The live job page, rendered with the current snapshot so it shows something before the socket connects."""
    if not is_job_id(job_id):
        abort(404)
    notifier = _notifier()
    try:
        snapshot = notifier.store.get(job_id)
    except JobNotFound:
        abort(404)
    except redis.RedisError:
        return render_template("notifier/unavailable.html", layout=notifier.layout), 503
    if not notifier.rules.may_watch(snapshot):
        abort(403)
    token = notifier.cancel_token_of(job_id)
    # Without the token, the app's can_cancel may grant it (the script then cancels with the
    # page's cookies, which the cancel view takes only from this site's pages).
    can_cancel = bool(token) or notifier.rules.may_cancel(snapshot)
    page = render_template("notifier/job.html", job=snapshot, title=notifier.kind_title(snapshot["kind"]),
                           layout=notifier.layout, cancel_token=token, can_cancel=can_cancel)
    # A page that carries a cancel token, or depends on who looks, is this viewer's alone: no
    # cache may keep it.
    personal = token or notifier.rules.per_viewer
    return page, 200, {"Cache-Control": "private, no-store"} if personal else {}


@bp.get("/api/jobs/<job_id>")
def get_job(job_id):
    """The job's current snapshot: what a script polls, or reads once after being told of a change."""
    if is_job_id(job_id):
        notifier = _notifier()
        try:
            snapshot = notifier.store.get(job_id)
        except JobNotFound:
            pass
        else:
            if not notifier.rules.may_watch(snapshot):
                return error(403, "forbidden", WATCH_FORBIDDEN)
            return snapshot
    return error(404, "not_found", f"no job with id {job_id[:64]}")


@bp.post("/api/jobs/<job_id>/cancel")
def cancel(job_id):
    """Ask a job to stop: a queued job is revoked at once (its worker will skip it), a running one
    stops at its next report. Its submitter may: the job's cancel token as a Bearer header (no
    cookie); a missing and a wrong token get the same answer. So may whoever the app's
    ``can_cancel`` lets, from a page of this site (``permissions.same_origin``)."""
    if not is_job_id(job_id):
        return error(404, "not_found", f"no job with id {job_id[:64]}")
    notifier = _notifier()
    try:
        try:
            access.check(notifier.store, job_id, access.request_token(request))
        except access.Forbidden:
            # The app's word needs the request to come from one of this site's pages: the
            # browser's cookies alone would let any other site's form cancel for it.
            if not (same_origin(request) and notifier.rules.may_cancel(notifier.store.get(job_id))):
                raise
        revoked = events.cancel(notifier.store, notifier.socketio, job_id,
                                message="cancelled before it started")
        return revoked or notifier.store.get(job_id), 202
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


@bp.errorhandler(HTTPException)
def http_error(exc):
    """The API's errors as JSON; the job page's as the app renders them."""
    return error_as_json(exc) if "/api/" in request.path else exc


def error_as_json(exc):
    """Any HTTP error (404, 405, 413, 429, ...) as the contract's JSON error."""
    code = (exc.name or "error").lower().replace(" ", "_")
    response = exc.get_response()
    response.set_data(current_app.json.dumps(error(exc.code, code, exc.description or exc.name)[0]))
    response.content_type = "application/json"
    return response
