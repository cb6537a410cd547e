"""``JobNotifier``: live job progress in a Flask app, the way Flask extensions are built.

    notifier = JobNotifier(app, url_prefix="/progress")   # or JobNotifier() + notifier.init_app(app)

It adds the Socket.IO namespace ``/jobs`` (``namespace.py``, with the relay that orders and
replays job events: ``relay.py``, ``listeners.py``), the ``heartbeat`` and the stalled-job check
(``heartbeat.py``, ``stall_check.py``), the job page and ``GET /api/jobs/<id>``,
``POST /api/jobs/<id>/cancel`` under ``url_prefix`` (``views.py``), each as far as the app's
``can_watch`` and ``can_cancel`` allow (``permissions.py``). It serves Socket.IO through the
app's own ``SocketIO`` when given one, else through one it makes (``server.py``), as ``.socketio``.

Everything it keeps for an app lives in ``app.extensions["notifier"]``, so one process may hold
several apps. Nothing connects, spawns or listens when it is built: the background loops start
when the app first serves (its first request or Socket.IO connection), once per process, so a
Celery worker that imports the app's module starts none of them.
"""

import os
import threading

from notifier.events import NAMESPACE
from notifier.settings import Settings
from notifier.store import JobStore

from . import heartbeat, server, stall_check
from .namespace import JobsNamespace
from .permissions import HostRules
from .views import bp

__all__ = ["JobNotifier"]


class NotifierState:
    """What the notifier keeps for one app: ``app.extensions["notifier"]``."""

    def __init__(self, settings, store, socketio, relay, *, url_prefix, kind_title, layout,
                 cancel_token_of, rules, background_loops):
        self.settings, self.store, self.socketio, self.relay = settings, store, socketio, relay
        self.url_prefix = url_prefix
        self.kind_title = kind_title or (lambda kind: kind)
        self.layout = layout
        self.cancel_token_of = cancel_token_of or (lambda job_id: None)
        self.rules = rules  # the app's can_watch and can_cancel (permissions.py)
        self.background_loops = background_loops
        self.loops = []
        self._serving_pid = None
        self._lock = threading.Lock()

    def serving(self):
        """Called on every request and connection: the first one in a process starts its loops."""
        if self._serving_pid == os.getpid() or not self.background_loops:
            return
        with self._lock:
            if self._serving_pid == os.getpid():
                return
            self._serving_pid = os.getpid()
            self.loops = [loop for loop in (stall_check.start(self.socketio, self.store, self.settings),
                                            heartbeat.start(self.socketio, self.store, self.settings))
                          if loop is not None]


class JobNotifier:
    """The notifier in a Flask app: see the module's docstring. Options (given here or to
    ``init_app``, which wins): ``settings`` (default: the environment, ``Settings.from_env()``);
    ``kind_title(kind)``: the job page's heading for a kind (default: the kind); ``layout``: the
    template the job page extends (it must extend ``notifier/base.html``); ``cancel_token_of(job_id)``:
    the cancel token the viewer holds for a job, or None (called in the page's request; the page
    shows Cancel with one; default: nobody's page does); ``can_watch(snapshot)`` and
    ``can_cancel(snapshot)``: the app's own say, e.g. from its login, called in the request's (or
    the Socket.IO connection's) context and answering a bool (default: a job id is enough to
    watch; only the cancel token cancels; see ``permissions.py``); ``background_loops=False``
    leaves out the heartbeat and the stall check (for tests that drive the app through Flask's
    client)."""

    DEFAULTS = {"settings": None, "kind_title": None, "layout": "notifier/base.html",
                "cancel_token_of": None, "can_watch": None, "can_cancel": None,
                "background_loops": True}

    def __init__(self, app=None, *, socketio=None, url_prefix="", **options):
        self._check(options)
        self.socketio = socketio  # after init_app: the SocketIO of the app last given
        self._given_socketio = socketio  # the app's own, when it was given here
        self.url_prefix = url_prefix
        self.options = options
        if app is not None:
            self.init_app(app)

    def _check(self, options):
        unknown = sorted(set(options) - set(self.DEFAULTS))
        if unknown:
            raise TypeError(f"unknown JobNotifier option(s): {', '.join(unknown)}")

    def init_app(self, app, *, socketio=None, url_prefix=None, **options):
        """Add the notifier to ``app``; returns what it keeps for it (``app.extensions["notifier"]``)."""
        self._check(options)
        options = {**self.DEFAULTS, **self.options, **options}
        settings = options["settings"] or Settings.from_env()
        url_prefix = self.url_prefix if url_prefix is None else url_prefix
        rules = HostRules(options["can_watch"], options["can_cancel"])
        store = JobStore.from_settings(settings)
        socketio, relay = server.bind(app, socketio or self._given_socketio, settings, store)
        state = NotifierState(settings, store, socketio, relay, url_prefix=url_prefix,
                              kind_title=options["kind_title"], layout=options["layout"],
                              cancel_token_of=options["cancel_token_of"], rules=rules,
                              background_loops=options["background_loops"])
        app.extensions["notifier"] = state
        socketio.on_namespace(JobsNamespace(NAMESPACE, relay, store, rules=rules,
                                            on_connect=state.serving,
                                            history_length=settings.history_length))
        app.register_blueprint(bp, url_prefix=url_prefix or None)
        app.before_request(state.serving)

        @app.context_processor
        def notifier_settings():
            """What the pages' JavaScript needs to know, e.g. when to call the connection stale."""
            return {"notifier_heartbeat_interval": settings.heartbeat_interval}

        self.socketio = socketio
        return state
