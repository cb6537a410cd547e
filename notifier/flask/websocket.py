"""Websocket frames written whole, and a deadline on writing them, where simple-websocket serves.

Under gevent (``gunicorn -k gevent``, ``python -m webapp``) and threads, Engine.IO serves websockets
with simple-websocket, which (1.1) writes each frame with one ``socket.send`` and ignores how much
of it the kernel took. A gevent socket's ``send`` takes what fits, so once a client reads slower
than its events arrive and the socket's buffer fills, the rest of a frame is dropped and every
later frame is garbage to the client. Engine.IO also means to give a websocket's socket a timeout
of ``ping_interval + ping_timeout`` (it does for eventlet's websockets) but does not find
simple-websocket's, so a write to a client that stopped reading would wait for good.

``whole_frames(engineio_server)`` fixes both for that server: its websockets write through a
socket whose ``send`` sends everything (one frame at a time) and which has Engine.IO's timeout.
And once Engine.IO closes one of them, it stops reading from it, so that the connection ends
even if the client goes on sending.

Eventlet's, uWSGI's and gevent-websocket's websockets already write whole frames and are left as
they are. Read from python-engineio 4.15 and simple-websocket 1.1, which pyproject.toml pins
(``Server._async``, ``SimpleWebSocketWSGI.ws`` and ``simple_websocket.Server.sock``);
``tests/test_slow_readers.py`` fails if one of them changes shape.
"""

import socket
import threading

from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI


class WholeFrames:
    """A socket whose ``send`` writes all it is given, one caller at a time (the writer and the
    websocket's own reader, which answers pings, both write frames). A client that takes nothing
    until the socket's timeout is gone: the socket is shut, so that its reader ends too, and the
    send fails as a write to a closed connection does."""

    def __init__(self, sock):
        self._sock = sock
        self._sending = threading.Lock()  # green under eventlet's and gevent's monkey patching

    def send(self, data, *flags):
        with self._sending:
            try:
                sent = self._sock.send(data, *flags)  # one call, as before, when it all fits
                if sent < len(data):
                    self._sock.sendall(memoryview(data)[sent:], *flags)
            except TimeoutError:
                self.shut(socket.SHUT_RDWR)
                raise BrokenPipeError("the client read nothing within the websocket's timeout") from None
        return len(data)

    def shut(self, how):
        """Shut the socket down (``socket.SHUT_RD``, ``SHUT_RDWR``), if it is not gone already."""
        try:
            self._sock.shutdown(how)
        except OSError:
            pass

    def __getattr__(self, name):
        return getattr(self._sock, name)


def whole_frames(engineio_server):
    """Make ``engineio_server``'s simple-websocket websockets write whole frames, with a deadline."""
    websocket = engineio_server._async.get("websocket")
    if not (isinstance(websocket, type) and issubclass(websocket, SimpleWebSocketWSGI)):
        return  # eventlet's, uWSGI's or gevent-websocket's: they write whole frames
    timeout = engineio_server.ping_interval + engineio_server.ping_timeout

    class WholeFramesWebSocket(websocket):
        @property
        def ws(self):
            return self.__dict__["ws"]

        @ws.setter
        def ws(self, server):  # set once simple-websocket has accepted the connection
            server.sock.settimeout(timeout)
            server.sock = WholeFrames(server.sock)
            self.__dict__["ws"] = server

        def close(self):
            """Send the close frame, then stop reading: simple-websocket goes on reading after
            it, and takes the connection up again when the client sends more, so a closed
            session's connection would last as long as its client kept talking."""
            super().close()
            self.ws.sock.shut(socket.SHUT_RD)

    engineio_server._async = {**engineio_server._async, "websocket": WholeFramesWebSocket}
