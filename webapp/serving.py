"""How this process is served: the Socket.IO async mode that fits the server running it, and the
monkey patching that ``python -m webapp`` does before anything else is imported."""

import os
import sys

# What `python -m webapp` serves with when SOCKETIO_ASYNC_MODE is not set: gevent's own server,
# with websockets through simple-websocket (the mode recommended in production).
RUN_DEFAULT_MODE = "gevent"


def fitting_async_mode():
    """The async mode of the server this process runs under, read from what that server did to
    it: gunicorn's eventlet and gevent workers monkey-patch the socket module before they load the
    app, and uWSGI's gevent loop is one of its options; anything else (``gunicorn -k gthread``,
    ``flask run``) serves with threads. Engine.IO's own guess picks eventlet whenever it is
    installed, which breaks every server that is not eventlet."""
    try:
        import uwsgi  # importable only inside uWSGI
    except ImportError:
        uwsgi = None
    if uwsgi is not None and uwsgi.opt.get("gevent"):
        return "gevent_uwsgi"
    if "gevent" in sys.modules:
        from gevent import monkey

        if monkey.is_module_patched("socket"):
            return "gevent"
    if "eventlet" in sys.modules:
        from eventlet import patcher

        if patcher.is_monkey_patched("socket"):
            return "eventlet"
    return "threading"


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
