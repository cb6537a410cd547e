"""How the job store's scripts reach Redis: a connection of the store's own when it is free,
redis-py's client otherwise.

A worker runs one script for every progress event, and redis-py's layers around a command (the
pool, retries, instrumentation) cost as much CPU as the command itself. So a call goes straight
to a connection of its own when no other thread is using it; on any failure there (Redis away, a
reply lost, the script not loaded after a restart) the same call, arguments and all, is made
again through the client, with its retries and script loading. This is only safe because every
store script is safe to run twice with the same arguments (each change carries its token).
"""

import os
import threading

import redis


class ScriptRunner:
    """Runs registered scripts (``client.register_script``) of one redis-py client."""

    def __init__(self, client):
        self.client = client
        self._own = None  # (pid, connection): made after a fork, never shared across one
        self._lock = threading.Lock()

    def run(self, script, keys, args):
        """Run ``script`` with ``keys`` and ``args``; returns its reply."""
        if self._lock.acquire(blocking=False):
            try:
                connection = self._connection()
                try:
                    connection.send_command("EVALSHA", script.sha, len(keys), *keys, *args,
                                            check_health=False)
                    return connection.read_response()
                except redis.exceptions.NoScriptError:
                    pass
                except (redis.ConnectionError, redis.TimeoutError):
                    connection.disconnect()
            finally:
                self._lock.release()
        return script(keys=keys, args=args)

    def _connection(self):
        pid = os.getpid()
        if self._own is None or self._own[0] != pid:
            pool = self.client.connection_pool
            self._own = (pid, pool.connection_class(**pool.connection_kwargs))
        return self._own[1]
