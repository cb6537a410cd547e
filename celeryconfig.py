"""Celery's settings, read from the same environment variables as the web process."""

import os

from notifier.settings import Settings

_settings = Settings.from_env()

broker_url = _settings.broker_url
# Nothing reads Celery's results: a job's outcome lives in the job store.
task_ignore_result = True

task_serializer = "json"
accept_content = ["json"]

# A job is acknowledged only once it is done, and handed back to the queue if its worker dies.
task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1
# With Redis as broker, a message nobody acknowledged comes back after this many seconds.
_visibility_timeout = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT") or 3600)
# kombu looks for such messages only every interval x throttle seconds (100 s by default): sweep
# about four times per visibility timeout, so a short one is honoured (the default is unchanged).
_restore_every = max(1, min(100, _visibility_timeout // 4))
_restore_interval = min(10, _restore_every)
broker_transport_options = {
    "visibility_timeout": _visibility_timeout,
    "unacked_restore_interval": _restore_interval,
    "unacked_restore_throttle": max(1, _restore_every // _restore_interval),
}

broker_connection_retry_on_startup = True
# Submitting while the broker is down fails fast (the web answers 503) instead of hanging.
task_publish_retry_policy = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                             "interval_max": 1}
broker_connection_timeout = 3

# Several deployments (or test runs) can share one broker by using their own queue.
task_default_queue = os.environ.get("CELERY_TASK_DEFAULT_QUEUE") or "celery"
