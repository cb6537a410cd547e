"""``python -m webapp``: serve the app with ``socketio.run``, whose options are its flags.

It serves with gevent's server unless SOCKETIO_ASYNC_MODE names another mode (eventlet's server,
or Werkzeug's with threads); importing the package has already monkey-patched for it.
"""

import argparse
import os

from . import create_app


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m webapp", description="Serve the web app with socketio.run.")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 5000),
                        help="port to listen on (default: $PORT, else 5000)")
    parser.add_argument("--debug", action="store_true",
                        help="Flask's debug mode: the interactive debugger, and the two options below")
    parser.add_argument("--use-reloader", action=argparse.BooleanOptionalAction, default=None,
                        help="restart when a module changes (default: with --debug)")
    parser.add_argument("--log-output", action=argparse.BooleanOptionalAction, default=None,
                        help="log every request (default: with --debug)")
    parser.add_argument("--allow-unsafe-werkzeug", action="store_true",
                        help="let SOCKETIO_ASYNC_MODE=threading run Werkzeug's server without a terminal")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    options = {name: value for name, value in vars(args).items() if value is not None}
    reloading = options.get("use_reloader", args.debug)
    # With the reloader this process only watches files and restarts the one that serves: it keeps
    # no heartbeat of its own.
    watcher_only = reloading and not os.environ.get("WERKZEUG_RUN_MAIN")
    app = create_app(background_loops=not watcher_only)
    app.extensions["notifier"].socketio.run(app, **options)


if __name__ == "__main__":
    main()
