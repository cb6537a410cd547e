"""The web process: Flask pages and JSON API, and the Socket.IO namespace ``/jobs``.

``create_app()`` is the one place that wires settings, the job store and the extensions together.
Serve it with ``gunicorn -k eventlet -w 1 'webapp:create_app()'`` (the Procfile), ``gunicorn -k gevent``,
``flask --app webapp run``, ``python -m webapp`` or uWSGI (see the README): the Socket.IO async mode
is the one that fits the server unless SOCKETIO_ASYNC_MODE says otherwise.
"""

from .serving import fitting_async_mode, patch_for_run, started_as_main

# `python -m webapp`: the monkey patching of the server it runs precedes every other import.
if started_as_main():
    patch_for_run()

import gc
import os

from flask import Flask, has_request_context, request, send_from_directory
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import BadRequest, HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wsgi import host_is_trusted

from notifier.events import NAMESPACE
from notifier.settings import Settings
from notifier.store import JobStore
from tasks import KINDS

from . import api, listeners, metrics, pages
from .extensions import csrf, limiter, retry_after, socketio
from .heartbeat import start_background_loops
from .namespace import JobsNamespace
from .packet_log import quiet_malformed_packets
from .polling import OversizedPollGuard

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOCKETIO_CLIENT_DIR = os.path.join(ROOT, "node_modules", "socket.io-client", "dist")
MAX_EVENT_BYTES = 16 * 1024  # the largest Socket.IO packet a client may send

# The cyclic garbage collector's thresholds in a serving process: see _tune_collector.
GC_THRESHOLDS = (50_000, 20, 10)

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class SessionInterface(SecureCookieSessionInterface):
    """The session cookie is ``Secure`` whenever the browser came over https, as the request
    itself or a trusted proxy (``TRUSTED_PROXIES``) says: it then never travels in clear text,
    while plain-http development keeps working."""

    def get_cookie_secure(self, app):
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


def _allowed_hosts_only(wsgi_app, hosts):
    """Answer only requests for one of ``hosts`` (``ALLOWED_HOSTS``), pages and Socket.IO alike.

    A DNS-rebinding page reaches this process under its own host name, and the browser treats it
    as same-origin: refusing unknown host names is what keeps it out. (Wrapped inside ProxyFix,
    so behind a trusted proxy it checks the host the browser asked for.)"""
    if "*" in hosts:
        return wsgi_app

    def app(environ, start_response):
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        if not host_is_trusted(host, hosts):
            return BadRequest("this host name is not one the app serves (ALLOWED_HOSTS)")(
                environ, start_response)
        return wsgi_app(environ, start_response)

    return app


def _origin_checker(allowed):
    """Socket.IO CORS: the page's own origin always, plus the configured ones. "Own" is built
    from the Host header, which _allowed_hosts_only has already checked."""

    def allow(origin, environ):
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin == own or origin in allowed

    return allow


def _tune_collector():
    """A serving process keeps every client's connection objects alive, about 180 per websocket:
    1.8M objects at 10k. With Python's default thresholds (700, 10, 10) a full collection, which
    stops the process for about 1.4 s at 10k sockets on a 2-core machine, comes every 25 s or so
    and finds nothing to free: short-lived objects (packets, heartbeats) reach the old generation
    before they die. Collecting the young generations less often lets them die young, so full
    collections become rare; what is alive once the app is built is left out of every later
    scan. Garbage is collected first, so none of it is frozen for good."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


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
    app.extensions["notifier.settings"] = settings
    app.extensions["notifier.store"] = JobStore.from_settings(settings)

    csrf.init_app(app)
    limiter.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    csrf.exempt(api.bp)

    manager = listeners.relay_manager(settings.message_queue, app.extensions["notifier.store"])
    socketio.init_app(
        app,
        async_mode=settings.async_mode or fitting_async_mode(),
        client_manager=manager,
        cors_allowed_origins=_origin_checker(settings.cors_allowed_origins),
        max_http_buffer_size=MAX_EVENT_BYTES,
        # One client's events are handled one after another, in order: a client that floods
        # subscribe calls queues behind itself instead of taking every Redis connection.
        async_handlers=False,
        logger=settings.socketio_logger,
        engineio_logger=settings.engineio_logger,
        **{name: value for name, value in (("ping_interval", settings.ping_interval),
                                           ("ping_timeout", settings.ping_timeout)) if value},
    )
    socketio.on_namespace(JobsNamespace(NAMESPACE, manager, app.extensions["notifier.store"],
                                        history_length=settings.history_length))
    app.wsgi_app = OversizedPollGuard(app.wsgi_app, socketio.server.eio, MAX_EVENT_BYTES)
    quiet_malformed_packets(socketio.server.eio.logger)
    app.wsgi_app = _allowed_hosts_only(app.wsgi_app, settings.allowed_hosts)
    if settings.trusted_proxies:
        # Wrapped after socketio.init_app, so it stands in front of Socket.IO's middleware too:
        # the origin check then sees the scheme and host the browser used, and the rate limit the
        # client's address. Only the last `trusted_proxies` values of each header are believed.
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)
    metrics.init_app(app, manager, KINDS)

    @app.get("/static/vendor/socket.io.min.js")
    def socketio_client():
        """The official socket.io client from its npm package, served from this origin (the CSP allows no other)."""
        return send_from_directory(SOCKETIO_CLIENT_DIR, "socket.io.min.js", max_age=3600)

    @app.errorhandler(HTTPException)
    def http_error(exc):
        """Scripts get JSON errors under /api/, people get the HTML page; a 429 says when to retry."""
        response = api.http_error_as_json(exc) if request.path.startswith("/api/") else exc.get_response()
        if exc.code == 429:
            response.headers["Retry-After"] = str(retry_after())
        return response

    @app.context_processor
    def page_settings():
        """What the pages' JavaScript needs to know, e.g. when to call the connection stale."""
        return {"heartbeat_interval": settings.heartbeat_interval}

    @app.after_request
    def security_headers(response):
        """Every answer forbids framing, sniffing and outside resources."""
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    if background_loops:
        _tune_collector()
        start_background_loops(app)
    return app
