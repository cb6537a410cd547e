"""The host app's say on who may watch a job and who may cancel it: its ``can_watch`` and
``can_cancel`` (``JobNotifier`` options), each ``fn(snapshot) -> bool`` called in the request's
context (for Socket.IO, the connection's), so ``flask.request``, the session and the app's login
extension (``flask_login.current_user``) work in them.

A rule that raises, or answers anything but a bool, refuses and is logged: an app's bug must
neither open a job to everyone nor break a connection. Cancelling on a rule's word (a login
cookie, not a token the page's script sends) also needs the request to come from a page of this
site, so a page on another site cannot make a logged-in browser cancel its jobs.
"""

import logging
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

WATCH_FORBIDDEN = "you may not watch this job"


class HostRules:
    """An app's ``can_watch`` and ``can_cancel``. Without ``can_watch`` a job id is enough to
    watch; without ``can_cancel`` only the job's cancel token cancels."""

    def __init__(self, can_watch=None, can_cancel=None):
        for name, rule in (("can_watch", can_watch), ("can_cancel", can_cancel)):
            if rule is not None and not callable(rule):
                raise TypeError(f"{name} must be a function of the job's snapshot, or None")
        self.can_watch, self.can_cancel = can_watch, can_cancel

    @property
    def watching_is_checked(self):
        """Whether watching needs more than the id (so the job must be read to decide)."""
        return self.can_watch is not None

    @property
    def per_viewer(self):
        """Whether what a page shows depends on who looks (so no shared cache may keep it)."""
        return self.can_watch is not None or self.can_cancel is not None

    def may_watch(self, snapshot):
        return self.can_watch is None or _ask(self.can_watch, "can_watch", snapshot)

    def may_cancel(self, snapshot):
        """Whether the app lets the viewer cancel the job; the cancel view also wants the
        request to come from this site (``same_origin``)."""
        return self.can_cancel is not None and _ask(self.can_cancel, "can_cancel", snapshot)


def _ask(rule, name, snapshot):
    try:
        answer = rule(snapshot)
    except Exception:
        log.exception("%s raised for job %s: refused", name, snapshot.get("job_id"))
        return False
    if not isinstance(answer, bool):
        log.error("%s answered %r for job %s, not a bool: refused", name, type(answer).__name__,
                  snapshot.get("job_id"))
        return False
    return answer


def same_origin(request):
    """True when ``request`` was sent by a page of this site: its ``Origin`` (or, without one, its
    ``Referer``) has this request's scheme and host. Browsers send ``Origin`` with every POST a
    script or a form makes, so a cross-site one always names the other site. Behind a proxy the
    app must see the browser's scheme and host (werkzeug's ``ProxyFix``), as Socket.IO's own
    origin check needs too."""
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    try:
        parts = urlsplit(source)
    except ValueError:
        return False
    return (parts.scheme, parts.netloc) == (request.scheme, request.host)
