"""A host app with a login of its own (flask-login) that decides who may follow its jobs through
``JobNotifier(can_watch=..., can_cancel=...)``: anyone logged in may watch, only a job's owner
(``params["owner"]``) may cancel. A job whose params say ``"broken"`` makes both rules raise, as
an app's bug would. Served by gunicorn in tests/test_host_rules.py (``login_app:create_app()``,
with tests/ on PYTHONPATH) and built in-process there too."""

import os

from flask import Flask
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user

from notifier.flask import JobNotifier


class User(UserMixin):
    def __init__(self, name):
        self.id = name


def _checked(job):
    if job["params"].get("broken"):
        raise RuntimeError("the app's rule is broken")
    return job


def can_watch(job):
    return _checked(job) and current_user.is_authenticated


def can_cancel(job):
    return _checked(job)["params"].get("owner") == current_user.get_id()


def create_app(settings=None, **options):
    app = Flask(__name__)
    app.secret_key = os.environ["SECRET_KEY"]
    login = LoginManager(app)
    login.user_loader(User)  # any name is a user here
    JobNotifier(app, settings=settings, can_watch=can_watch, can_cancel=can_cancel, **options)

    @app.post("/login/<name>")
    def log_in(name):
        login_user(User(name))
        return {"user": name}

    @app.post("/logout")
    def log_out():
        logout_user()
        return {"user": None}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok"}

    return app
