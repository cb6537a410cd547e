"""The HTML pages: the submit form, the job page and the health check."""

import logging

import redis
from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from notifier.params import ParamsInvalid
from notifier.store import JobNotFound, is_job_id
from tasks import KINDS

from .extensions import SERVER_ID, get_store, submit_rate_limit
from .forms import SubmitForm, params_forms
from .jobs import BrokerUnavailable, submit_job

bp = Blueprint("pages", __name__)
log = logging.getLogger(__name__)
# The cancel tokens of this browser's newest form submissions, kept in its session cookie, which
# must stay well under a browser's 4 KB: about 80 bytes each.
SESSION_TOKENS = 20


def _transport():
    """A forced Socket.IO transport (``?transport=polling``), carried from page to page."""
    transport = request.args.get("transport")
    return transport if transport in ("polling", "websocket") else None


def _index(form, forms, status=200, problem=None):
    return render_template("index.html", form=form, params_forms=forms, kinds=KINDS,
                           problem=problem, transport=_transport()), status


@bp.get("/")
def index():
    """The submit form and this browser's recent jobs: the page people start from."""
    return _index(SubmitForm(), params_forms())


@bp.post("/jobs")
@submit_rate_limit
def submit():
    """The form's submission: a 303 to the job page, or the form again with errors beside the fields."""
    form, forms = SubmitForm(), params_forms(request.form)
    kind_ok = form.validate()
    params_form = forms.get(form.kind.data)
    if not kind_ok or params_form is None or not params_form.validate():
        return _index(form, forms, 400)
    try:
        snapshot, token = submit_job(form.kind.data, params_form.data)
    except ParamsInvalid as exc:
        for name, message in exc.errors.items():
            if name in params_form:
                params_form[name].errors.append(message)
        return _index(form, forms, 400)
    except (redis.RedisError, BrokerUnavailable):
        return _index(form, forms, 503, "The job queue is unavailable right now: nothing was "
                                        "submitted. Please try again in a moment.")
    _hold_cancel_token(snapshot["job_id"], token)
    return redirect(url_for("pages.job_page", job_id=snapshot["job_id"], transport=_transport()), 303)


@bp.get("/jobs/<job_id>")
def job_page(job_id):
    """The live job page, rendered with the current snapshot so it shows something before the socket connects."""
    if not is_job_id(job_id):
        abort(404)
    try:
        snapshot = get_store().get(job_id)
    except JobNotFound:
        abort(404)
    except redis.RedisError:
        return render_template("unavailable.html"), 503
    token = _held_cancel_token(job_id)
    page = render_template("job.html", job=snapshot, kind=KINDS.get(snapshot["kind"]), cancel_token=token)
    # A page that carries a cancel token is this browser's alone: no cache may keep it.
    return page, 200, {"Cache-Control": "private, no-store"} if token else {}


def _hold_cancel_token(job_id, token):
    """Let this browser (its session) cancel the job it just submitted; the oldest tokens go first."""
    held = [pair for pair in session.get("cancel_tokens", []) if pair[0] != job_id]
    session["cancel_tokens"] = [*held, [job_id, token]][-SESSION_TOKENS:]


def _held_cancel_token(job_id):
    """The job's cancel token if this browser submitted it, else None."""
    return dict(session.get("cancel_tokens", [])).get(job_id)


@bp.get("/healthz")
def healthz():
    """Whether this process can reach the job store: for load balancers and probes."""
    try:
        get_store().ping()
    except redis.RedisError as exc:
        log.warning("health check: Redis is unreachable (%s)", exc)
        # Names what is down, never its address or credentials.
        return {"status": "unavailable", "redis": "unreachable", "server": SERVER_ID}, 503
    return {"status": "ok", "redis": "ok", "server": SERVER_ID}
