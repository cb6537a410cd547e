"""The Socket.IO async mode that fits the server running this process, for when
``SOCKETIO_ASYNC_MODE`` does not say: read from what that server did to the process."""

import sys


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
