"""Long-polling POSTs larger than Engine.IO takes: answered at once, their session closed.

python-engineio (4.15) answers such a POST by closing its session and then waiting until the
session's queue has been read, which only that client's next poll would do: the POST is never
answered and its socket stays open for good. This guard, in front of Engine.IO, answers ``413``
without reading the body and closes the session without waiting; the client's next poll gets
the session's close packet.
"""

from urllib.parse import parse_qs


class OversizedPollGuard:
    """WSGI middleware: a POST to ``path`` with a body over ``limit`` bytes is answered 413."""

    def __init__(self, wsgi_app, engineio_server, limit, path="/socket.io/"):
        self.wsgi_app, self.engineio, self.limit, self.path = wsgi_app, engineio_server, limit, path

    def __call__(self, environ, start_response):
        if (environ.get("REQUEST_METHOD") == "POST" and environ.get("PATH_INFO", "").startswith(self.path)
                and _content_length(environ) > self.limit):
            sid = parse_qs(environ.get("QUERY_STRING", "")).get("sid", [None])[0]
            session = self.engineio.sockets.get(sid)
            if session is not None:
                session.close(wait=False, reason=self.engineio.reason.SERVER_DISCONNECT)
            body = f"a long-polling packet may be at most {self.limit} bytes".encode()
            start_response("413 Payload Too Large", [("Content-Type", "text/plain"),
                                                     ("Content-Length", str(len(body)))])
            return [body]
        return self.wsgi_app(environ, start_response)


def _content_length(environ):
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return 0  # Engine.IO refuses it itself
