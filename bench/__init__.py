"""The benchmark: the notifier against Node socket.io, a bare Redis hop and HTTP polling.

Run it with ``python -m bench`` (see ``bench/__main__.py``); ``python -m bench.worker_cpu`` measures
one worker's CPU per ``progress()``; ``bench/load.py`` is the older correctness-under-load run
through real Celery workers that the test suite reuses.
"""
