"""The standalone web app: the submit form and the jobs API around the notifier's job pages.

``create_app()`` is the one place that wires settings, the notifier and the app's own extensions
together; it uses ``notifier.flask.JobNotifier`` the way any Flask app would. Serve it with
``gunicorn -k eventlet -w 1 'webapp:create_app()'`` (the Procfile), ``gunicorn -k gevent``,
``flask --app webapp run``, ``python -m webapp`` or uWSGI (see the README): the Socket.IO async mode
is the one that fits the server unless SOCKETIO_ASYNC_MODE says otherwise.
"""

from .serving import patch_for_run, started_as_main

# `python -m webapp`: the monkey patching of the server it runs precedes every other import.
if started_as_main():
    patch_for_run()

import os

from flask import Flask, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wsgi import host_is_trusted

from notifier.flask import JobNotifier
from notifier.flask.collector import tune_collector
from notifier.flask.views import bp as notifier_bp, error_as_json
from notifier.settings import Settings
from tasks import KINDS

from . import api, metrics, pages
from .extensions import csrf, limiter, retry_after

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


def _kind_title(kind):
    """The job page's heading: the registered kind's title."""
    return KINDS[kind].title if kind in KINDS else kind


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is ``Secure`` whenever the browser came over https, as the request
    itself or a trusted proxy (``TRUSTED_PROXIES``) says: it then never travels in clear text,
    while plain-http development keeps working."""

    def get_cookie_secure(self, app):
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


def _allowed_hosts_only(wsgi_app, hosts):
    """Answer only requests for one of ``hosts`` (``ALLOWED_HOSTS``), pages and Socket.IO alike.

    A DNS-rebinding page reaches this process under its own host name, and the browser treats it
    as same-origin: refusing unknown host names is what keeps it out (the Socket.IO origin check
    builds "own origin" from the Host header). Wrapped inside ProxyFix, so behind a trusted proxy
    it checks the host the browser asked for."""
    if "*" in hosts:
        return wsgi_app

    def app(environ, start_response):
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if not host_is_trusted(host, hosts):
            return BadRequest("this host name is not one the app serves (ALLOWED_HOSTS)")(
                environ, start_response)
        return wsgi_app(environ, start_response)

    return app


def create_app(settings=None, *, background_loops=True):
    """Build the web app from ``settings`` (default: the environment); ``background_loops=False``
    leaves out the heartbeat, the stall check and the collector's tuning (for tests that drive the
    app through Flask's client)."""
    settings = settings or Settings.from_env()
    app = Flask(__name__, template_folder=os.path.join(ROOT, "templates"))
    app.config.update(
        SECRET_KEY=settings.web_secret_key(),
        WTF_CSRF_TIME_LIMIT=None,  # a form left open overnight still submits
        MAX_CONTENT_LENGTH=64 * 1024,
        SESSION_COOKIE_SAMESITE="Lax",  # and Secure over https: see SessionInterface
        RATELIMIT_STORAGE_URI=settings.redis_url,
        RATELIMIT_KEY_PREFIX=f"{settings.key_prefix}ratelimit",
    )
    app.session_interface = SessionInterface()
    JobNotifier(app, settings=settings, kind_title=_kind_title, layout="base.html",
                cancel_token_of=pages.held_cancel_token, background_loops=background_loops)

    csrf.init_app(app)
    limiter.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)
    csrf.exempt(notifier_bp)  # the notifier's API takes no cookie, so needs no CSRF token
    app.wsgi_app = _allowed_hosts_only(app.wsgi_app, settings.allowed_hosts)
    if settings.trusted_proxies:
        # Wrapped after the notifier's Socket.IO, so it stands in front of Socket.IO's middleware
        # too: the origin check then sees the scheme and host the browser used, and the rate limit
        # the client's address. Only the last `trusted_proxies` values of each header are believed.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    metrics.init_app(app, KINDS)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        """Scripts get JSON errors under /api/, people get the HTML page; a 429 says when to retry."""
        response = error_as_json(exc) if request.path.startswith("/api/") else exc.get_response()
        if exc.code == 429:
            response.headers["Retry-After"] = str(retry_after())
        return response

    @app.after_request
    def security_headers(response):
        """Every answer forbids framing, sniffing and outside resources."""
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    if background_loops:
        tune_collector()
    return app
