"""What the web process and the workers share: settings, the job store, params and event names.

Imports neither ``webapp`` nor ``tasks``.
"""
