"""The terminal client: submit jobs to any running notifier and watch them live.

It speaks only the public surface (the HTTP API and the Socket.IO namespace ``/jobs``) and imports
nothing of the server: neither ``webapp`` nor ``tasks``, nor Flask or Celery. Run it with
``python -m jobclient``.
"""
