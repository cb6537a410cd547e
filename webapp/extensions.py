"""What the standalone app's modules share, each with one accessor: its Flask extensions (created
unbound here and wired to the app in ``create_app``), the notifier's settings and job store, and
the submit rate limit."""

import math
import time

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import CSRFProtect

csrf = CSRFProtect()
# Storage and limits are set in create_app; a Redis outage must not turn every page into a 500.
# No X-RateLimit-* headers: they cost two more Redis calls on every submission. A refused one
# still says when to come back (retry_after).
limiter = Limiter(key_func=get_remote_address, headers_enabled=False, swallow_errors=True)


def get_settings():
    """The settings the current app was built with."""
    return current_app.extensions["notifier"].settings


def get_store():
    """The current app's job store."""
    return current_app.extensions["notifier"].store


# Form and API submissions from one address count against the same limit.
submit_rate_limit = limiter.shared_limit(lambda: get_settings().submit_rate_limit, scope="submit")


def retry_after():
    """Seconds until the limit this request broke lets it through again (for ``Retry-After``)."""
    limit = limiter.current_limit
    return max(1, math.ceil(limit.reset_at - time.time())) if limit else 60
