"""The Flask extensions, created unbound here and wired to the app in ``create_app``."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_socketio import SocketIO
from flask_wtf import CSRFProtect

socketio = SocketIO()
csrf = CSRFProtect()
# Storage and limits are set in create_app; a Redis outage must not turn every page into a 500.
limiter = Limiter(key_func=get_remote_address, headers_enabled=True, swallow_errors=True)
