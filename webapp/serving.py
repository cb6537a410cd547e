"""How ``python -m webapp`` serves: its async mode, and the monkey patching it does before
anything else is imported. (Under any other server the notifier picks the async mode that fits
it: ``notifier.flask.async_mode``.)"""

import os
import sys

# What `python -m webapp` serves with when SOCKETIO_ASYNC_MODE is not set: gevent's own server,
# with websockets through simple-websocket (the mode recommended in production).
RUN_DEFAULT_MODE = "gevent"


def run_mode(environ=os.environ):
    """The async mode ``python -m webapp`` serves with: SOCKETIO_ASYNC_MODE, else gevent."""
    return (environ.get("SOCKETIO_ASYNC_MODE") or "").strip() or RUN_DEFAULT_MODE


def started_as_main():
    """True while ``python -m webapp`` imports the package, before its ``__main__`` runs (Python
    sets ``sys.argv[0]`` to ``-m`` while it looks for the module)."""
    argv = sys.orig_argv
    at = argv.index("-m") if "-m" in argv else -2
    return sys.argv[:1] == ["-m"] and argv[at + 1:at + 2] == ["webapp"]


def patch_for_run():
    """Monkey-patch the standard library for the server ``python -m webapp`` runs: this must come
    before any other import, or what was imported keeps blocking sockets and locks (the Redis
    message queue then refuses to start and every client gets 401)."""
    mode = run_mode()
    if mode == "eventlet":
        import eventlet

        eventlet.monkey_patch()
    elif mode == "gevent":
        from gevent import monkey

        monkey.patch_all()
