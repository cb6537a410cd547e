"""What a client's malformed Socket.IO packets may put in this process's log.

Engine.IO logs every exception raised while a client's packet is handled as an ERROR with its
traceback ("message handler error"): one client sending junk could fill the log. When the
exception was raised within python-socketio, python-engineio and the standard library alone
(the packet could not be decoded, or named nothing that exists), the record becomes one WARNING
line, at most one every ``interval`` seconds, saying how many were left out meanwhile.
Exceptions from a handler (the notifier's or the app's own) keep their traceback.
"""

import logging
import os
import threading
import time

import engineio
import socketio

# Where a malformed packet's exception is raised: the packet layers, and the standard library
# they call (whose folder may hold site-packages: those are not it).
PACKET_LAYERS = tuple(os.path.dirname(os.path.abspath(module.__file__)) + os.sep
                      for module in (engineio, socketio))
STDLIB = os.path.dirname(os.path.abspath(os.__file__)) + os.sep


class MalformedPacketLog(logging.Filter):
    """A filter for Engine.IO's logger: a client's malformed packet is one rate-limited line."""

    def __init__(self, interval=10.0):
        super().__init__()
        self.interval = interval
        self.lock = threading.Lock()
        self.quiet_until = 0.0
        self.left_out = 0

    def filter(self, record):
        if not record.exc_info or not str(record.msg).endswith("handler error") \
                or _raised_in_a_handler(record.exc_info[2]):
            return True
        with self.lock:
            now = time.monotonic()
            if now < self.quiet_until:
                self.left_out += 1
                return False
            left_out, self.left_out, self.quiet_until = self.left_out, 0, now + self.interval
        exc = record.exc_info[1]
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.msg = "WARNING: dropped a malformed packet from a client (%s: %.200s)%s"
        record.args = (type(exc).__name__, exc,
                       f"; {left_out} more since the last such line" if left_out else "")
        record.exc_info = record.exc_text = None
        return True


def _raised_in_a_handler(tb):
    while tb is not None:
        if not _packet_code(tb.tb_frame.f_code.co_filename):
            return True
        tb = tb.tb_next
    return False


def _packet_code(filename):
    return filename.startswith(PACKET_LAYERS) or (
        filename.startswith(STDLIB) and not any(part in filename for part in ("site-packages", "dist-packages")))


def quiet_malformed_packets(logger):
    """Install the filter on ``logger`` (Engine.IO's), once."""
    if not any(isinstance(f, MalformedPacketLog) for f in logger.filters):
        logger.addFilter(MalformedPacketLog())
