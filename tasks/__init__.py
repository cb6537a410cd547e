"""The Celery side: the app, the registered job kinds and the progress reporter.

Run a worker with ``celery -A tasks worker``. Never imports ``webapp``.
"""

from .app import celery_app
from .registry import KINDS, JobKind, job_kind
from . import kinds  # noqa: F401  (registers the built-in kinds)

__all__ = ["celery_app", "KINDS", "JobKind", "job_kind"]
