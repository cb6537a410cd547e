"""The notifier's shared core, which imports neither ``webapp`` nor ``tasks``.

What the web process and the workers share: settings, the job store (and its Lua scripts in
``scripts/``), params and event names with the one way an event is made (``events.record``).
Besides these, two operator commands that belong to neither side: ``local_redis`` (the
development Redis that ``make run`` starts) and ``announce`` (an announcement to every open page).
"""
