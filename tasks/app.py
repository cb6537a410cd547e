"""The Celery app, configured from ``celeryconfig.py``."""

from celery import Celery

celery_app = Celery("tasks", include=["tasks.kinds"])
celery_app.config_from_object("celeryconfig")
# Make it the current app too, so nothing binds to Celery's default (amqp://localhost) app.
celery_app.set_default()
