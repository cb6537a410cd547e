"""An operator's announcement to every open page and terminal watcher, or to one job's watchers:

    python -m notifier.announce "Maintenance" "Jobs pause at 18:00 for ten minutes"
    python -m notifier.announce "Slow worker" "This one may take an hour" --job <job_id>

A plain process (no web app, no eventlet): it emits ``announcement`` on ``/jobs`` with two
arguments, title and body, through the Socket.IO message queue (``SOCKETIO_MESSAGE_QUEUE``, else
``REDIS_URL``) that every web process relays to its clients. Exit status: 0 sent, 1 the message
queue cannot be reached, 2 bad arguments.
"""

import argparse
import sys
import uuid
from urllib.parse import urlparse

from flask_socketio import SocketIO

from .events import ANNOUNCEMENT, NAMESPACE
from .settings import Settings

CONNECT_TIMEOUT = 3.0  # seconds: an operator waits for an answer, not for retries
EXIT_UNREACHABLE = 1


def _text(value):
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def _job_id(value):
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a job id") from None


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m notifier.announce",
        description="Show an announcement on every open page and terminal watcher.")
    parser.add_argument("title", type=_text, help="short headline, shown in bold")
    parser.add_argument("body", type=_text, help="the message itself")
    parser.add_argument("--job", type=_job_id, metavar="JOB_ID",
                        help="only to the people watching this job")
    return parser


def where(url):
    """The message queue's host and port, for messages (never its credentials)."""
    parsed = urlparse(url)
    return f"{parsed.scheme}://{parsed.hostname}:{parsed.port}" if parsed.port else parsed.scheme


def check_reachable(url):
    """Raise if the message queue does not answer within CONNECT_TIMEOUT.

    python-socketio's publisher only logs a failed publish and carries on, so without this an
    announcement into a dead queue would look sent.
    """
    if urlparse(url).scheme in ("redis", "rediss", "unix"):
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT,
                             socket_timeout=CONNECT_TIMEOUT).ping()
    else:  # amqp:// and whatever else kombu speaks
        import kombu

        with kombu.Connection(url, connect_timeout=CONNECT_TIMEOUT) as connection:
            connection.ensure_connection(max_retries=1, timeout=CONNECT_TIMEOUT)


def announce(message_queue, title, body, job_id=None):
    """Emit the announcement through the message queue: to one job's room, or to everyone."""
    # Write-only (no app); threading, so it never picks eventlet up because it is installed.
    emitter = SocketIO(message_queue=message_queue, async_mode="threading")
    emitter.emit(ANNOUNCEMENT, (title, body), namespace=NAMESPACE, to=job_id)


def main(argv=None):
    args = build_parser().parse_args(argv)
    queue = Settings.from_env().message_queue
    try:
        check_reachable(queue)
    except Exception as exc:  # any failure to connect, from redis or kombu: one line, no traceback
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: the message queue at {where(queue)} cannot be reached: {reason}",
              file=sys.stderr)
        return EXIT_UNREACHABLE
    announce(queue, args.title, args.body, args.job)
    print(f"announced to {'job ' + args.job if args.job else 'everyone'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
