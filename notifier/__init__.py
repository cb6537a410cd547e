"""The notifier: live progress of Celery jobs for Flask apps, as a library.

Two pieces for an app, each a subpackage of its side: ``notifier.flask.JobNotifier`` (the web
side: Socket.IO namespace ``/jobs``, heartbeat, stalled-job check, job page and job API) and
``notifier.celery.ProgressTask`` (the worker side: a task base class whose runs are jobs). What
both sides share: settings, the job store (``store``, its Lua scripts in ``scripts/``, and how
they reach Redis: ``fastpath``), params, event names with the one way an event is made
(``events.record``) and the progress reporter (``reporter``). It never imports the standalone
app (``webapp``, ``tasks``, ``celeryconfig``).

Besides these, two operator commands: ``local_redis`` (the development Redis that ``make run``
starts) and ``announce`` (an announcement to every open page).
"""
