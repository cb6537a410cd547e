"""How a job kind is declared: ``@job_kind(name, *params)`` turns a function into a Celery task.

The function receives a ProgressReporter and its cleaned params, and returns a JSON-able result::

    @job_kind("sleep", Param("steps", int, 1, 10000, default=10))
    def sleep(reporter, steps):
        for step in reporter.steps(steps):
            time.sleep(0.5)
        return {"slept": steps}

Each kind is a ``notifier.celery.ProgressTask`` named ``jobs.<name>`` whose jobs have the kind
``name``. The web form and the API list and validate exactly what is registered here.
"""

from dataclasses import dataclass, field

from notifier.celery import ProgressTask
from notifier.params import ParamsInvalid, clean_params

from .app import celery_app

KINDS = {}


@dataclass(frozen=True)
class JobKind:
    name: str
    params: dict
    task: object
    title: str = ""
    description: str = ""
    check: object = field(default=None, repr=False)

    def describe(self):
        """This kind as ``GET /api/kinds`` shows it."""
        return {"name": self.name, "title": self.title, "help": self.description,
                "params": [param.describe() for param in self.params.values()]}

    def clean(self, params):
        """Validated params with defaults filled in; raises ParamsInvalid naming each bad field."""
        clean = clean_params(params, self.params)
        errors = self.check(clean) if self.check else None
        if errors:
            raise ParamsInvalid(errors)
        return clean


def job_kind(name, *params, title="", check=None):
    """Register ``fn`` as the job kind ``name``; ``check(params)`` may return cross-field errors."""

    def register(fn):
        @celery_app.task(name=f"jobs.{name}", base=ProgressTask, bind=True, kind=name)
        def task(self, **params):
            return fn(self.reporter, **params)

        description = (fn.__doc__ or "").strip().split("\n\n")[0]
        KINDS[name] = JobKind(name, {p.name: p for p in params}, task,
                              title or name.capitalize(), " ".join(description.split()), check)
        return fn

    return register
