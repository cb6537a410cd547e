"""Tuning of Python's cyclic garbage collector for a process that holds many websockets.

A serving process keeps every client's connection objects alive, about 180 per websocket: 1.8M
objects at 10k. With Python's default thresholds (700, 10, 10) a full collection, which stops the
process for about 1.4 s at 10k sockets on a 2-core machine, comes every 25 s or so and finds
nothing to free: short-lived objects (packets, heartbeats) reach the old generation before they
die. Collecting the young generations less often lets them die young, so full collections become
rare; what is alive once the app is built is left out of every later scan.

It changes the whole process, so an app opts in: the standalone app calls it once it is built.
"""

import gc

GC_THRESHOLDS = (50_000, 20, 10)


def tune_collector():
    """Freeze what is alive now (garbage is collected first, so none of it is frozen for good)
    and collect the young generations less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
