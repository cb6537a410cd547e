"""The Socket.IO server of an app: the one JobNotifier makes from the settings, or the app's own
with the notifier's relay put in as its client manager.

Flask-SocketIO options the app gave its own ``SocketIO`` win over the notifier's defaults; only the
client manager is the notifier's, since the relay (``relay.py``) is what orders and replays job
events. It listens on the app's ``message_queue`` when one was given, else on the settings' one.
"""

from flask_socketio import SocketIO

from .async_mode import fitting_async_mode
from .listeners import relay_manager
from .namespace import replay_burst
from .packet_log import quiet_malformed_packets
from .polling import OversizedPollGuard
from .websocket import whole_frames

MAX_EVENT_BYTES = 16 * 1024  # the largest Socket.IO packet a client may send


def backlog_limit(settings):
    """How many packets a client may have waiting to be sent before it is dropped as too slow:
    twice what its replay budget lets it ask for at once, so that a client still taking in its
    replays is never mistaken for one that stopped reading."""
    return 2 * replay_burst(settings.history_length)


def origin_checker(allowed):
    """Socket.IO CORS: the page's own origin always, plus the configured ones."""

    def allow(origin, environ):
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin == own or origin in allowed

    return allow


def default_options(settings):
    """The server options the notifier uses unless the app's own SocketIO says otherwise."""
    options = dict(
        async_mode=settings.async_mode or fitting_async_mode(),
        cors_allowed_origins=origin_checker(settings.cors_allowed_origins),
        max_http_buffer_size=MAX_EVENT_BYTES,
        # One client's events are handled one after another, in order: a client that floods
        # subscribe calls queues behind itself instead of taking every Redis connection.
        async_handlers=False,
        logger=settings.socketio_logger,
        engineio_logger=settings.engineio_logger,
    )
    options.update({name: value for name, value in (("ping_interval", settings.ping_interval),
                                                    ("ping_timeout", settings.ping_timeout)) if value})
    return options


def bind(app, socketio, settings, store):
    """Serve ``app``'s Socket.IO with the notifier's relay (which drops clients that stopped
    reading), its long-polling guard, websockets that write whole frames and its quiet log of
    malformed packets; returns ``(socketio, relay)``.

    ``socketio`` may be None (one is made), an unbound ``SocketIO()`` (bound here) or one already
    bound to the app (its client manager is replaced, which must happen before it serves).
    """
    socketio = socketio if socketio is not None else SocketIO()
    url = socketio.server_options.get("message_queue") or settings.message_queue
    channel = socketio.server_options.get("channel") or "flask-socketio"
    relay = relay_manager(url, store, channel=channel, max_backlog=backlog_limit(settings))
    if socketio.server is None:
        theirs = {k: v for k, v in socketio.server_options.items() if k not in ("message_queue", "channel")}
        socketio.server_options.clear()
        socketio.init_app(app, **{**default_options(settings), **theirs, "client_manager": relay})
    else:
        server = socketio.server
        if server.manager_initialized:
            raise RuntimeError("JobNotifier must be set up before the app's SocketIO serves")
        server.manager = relay
        relay.set_server(server)
    eio = socketio.server.eio
    app.wsgi_app = OversizedPollGuard(app.wsgi_app, eio, eio.max_http_buffer_size)
    whole_frames(eio)
    quiet_malformed_packets(eio.logger)
    return socketio, relay
