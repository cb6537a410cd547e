"""Every setting of the notifier, read from the environment with its default, in one place."""

import math
import os
import secrets
import warnings
from dataclasses import dataclass, field

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
SOCKETIO_CHANNEL = "flask-socketio"  # Flask-SocketIO's pub/sub channel (python-socketio's is "socketio")
# "gevent_uwsgi" is gevent under uWSGI, whose websockets are its own.
ASYNC_MODES = ("eventlet", "gevent", "gevent_uwsgi", "threading")
# The host names `make run` (127.0.0.1:5000) and `make cluster` (127.0.0.1:8000) are reached by.
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1")


def _float(environ, name, default):
    """Read a number of seconds, failing loudly on a typo rather than running with a surprise."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {raw!r}") from None


def _count(environ, name, default):
    """Read a whole number that may not be negative (a count of something), failing loudly."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ValueError(f"{name} must be a whole number, 0 or more, not {raw!r}")
    return value


def _above_zero(environ, name, default, kind):
    """Read a setting that must be more than 0 (a whole number when ``kind`` is int): 0 or less
    would start the service and then break every job, so it is refused at start."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        what = "a whole number" if kind is int else "a number of seconds"
        raise ValueError(f"{name} must be {what} greater than 0, not {raw!r}")
    return value


def _flag(environ, name):
    return environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    broker_url: str = DEFAULT_REDIS_URL
    message_queue: str = DEFAULT_REDIS_URL
    secret_key: str = ""
    production: bool = False
    async_mode: str | None = None  # None: the mode that fits the server (webapp.serving)
    ping_interval: float | None = None
    ping_timeout: float | None = None
    socketio_logger: bool = False
    engineio_logger: bool = False
    heartbeat_interval: float = 5.0
    stall_timeout: float = 30.0
    cors_allowed_origins: list[str] = field(default_factory=list)
    submit_rate_limit: str = "60 per minute"
    trusted_proxies: int = 0  # reverse proxies whose X-Forwarded-* headers are believed
    # Host names the web app answers to ("*": any); a page on any other name is refused, so a
    # DNS-rebinding page cannot pass as the app's own origin.
    allowed_hosts: list[str] = field(default_factory=lambda: list(DEFAULT_ALLOWED_HOSTS))
    # Not in the public contract: tuning knobs with safe defaults.
    history_length: int = 1000
    finished_ttl: int = 24 * 3600  # seconds, whole: what Redis EXPIRE takes
    progress_min_interval: float = 0.1
    key_prefix: str = "notifier:"

    def web_secret_key(self):
        """The key that signs sessions and CSRF tokens: required in production, random in development."""
        if self.secret_key:
            return self.secret_key
        if self.production:
            raise RuntimeError("SECRET_KEY must be set when NOTIFIER_ENV=production")
        warnings.warn(
            "SECRET_KEY is not set: using a random key for this process (development only)",
            stacklevel=2,
        )
        return secrets.token_hex(32)

    @classmethod
    def from_env(cls, environ=None):
        """Build the settings from environment variables (``os.environ`` unless given)."""
        env = os.environ if environ is None else environ
        redis_url = env.get("REDIS_URL") or DEFAULT_REDIS_URL
        production = (env.get("NOTIFIER_ENV") or "development").strip().lower() == "production"
        async_mode = (env.get("SOCKETIO_ASYNC_MODE") or "").strip() or None
        if async_mode is not None and async_mode not in ASYNC_MODES:
            raise ValueError(f"SOCKETIO_ASYNC_MODE must be one of {', '.join(ASYNC_MODES)}")
        origins = [o.strip() for o in env.get("CORS_ALLOWED_ORIGINS", "").split(",") if o.strip()]
        hosts = [h.strip().lower() for h in env.get("ALLOWED_HOSTS", "").split(",") if h.strip()]
        return cls(
            redis_url=redis_url,
            broker_url=env.get("CELERY_BROKER_URL") or redis_url,
            message_queue=env.get("SOCKETIO_MESSAGE_QUEUE") or redis_url,
            secret_key=env.get("SECRET_KEY", ""),
            production=production,
            async_mode=async_mode,
            ping_interval=_float(env, "SOCKETIO_PING_INTERVAL", None),
            ping_timeout=_float(env, "SOCKETIO_PING_TIMEOUT", None),
            socketio_logger=_flag(env, "SOCKETIO_LOGGER"),
            engineio_logger=_flag(env, "ENGINEIO_LOGGER"),
            heartbeat_interval=_float(env, "HEARTBEAT_INTERVAL", 5.0),
            stall_timeout=_above_zero(env, "JOB_STALL_TIMEOUT", 30.0, float),
            cors_allowed_origins=origins,
            submit_rate_limit=env.get("SUBMIT_RATE_LIMIT") or "60 per minute",
            trusted_proxies=_count(env, "TRUSTED_PROXIES", 0),
            allowed_hosts=hosts or list(DEFAULT_ALLOWED_HOSTS),
            history_length=_above_zero(env, "JOB_HISTORY_LENGTH", 1000, int),
            finished_ttl=_above_zero(env, "JOB_FINISHED_TTL", 24 * 3600, int),
            progress_min_interval=_float(env, "PROGRESS_MIN_INTERVAL", 0.1),
            key_prefix=env.get("NOTIFIER_KEY_PREFIX") or "notifier:",
        )
