"""Turning what was sent and what arrived into figures: percentiles and freshness."""

import math
from bisect import bisect_left
from collections import defaultdict


def percentile(values, q):
    """Nearest-rank percentile (q in 0..100) of ``values``; None if empty or not finite."""
    if not values:
        return None
    ordered = sorted(values)
    value = ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]
    return None if math.isinf(value) else round(value, 3)


def summary(latencies_ms):
    """p50, p99 and max of a list of milliseconds."""
    return {"p50_ms": percentile(latencies_ms, 50), "p99_ms": percentile(latencies_ms, 99),
            "max_ms": percentile(latencies_ms, 100), "n": len(latencies_ms)}


def _holding(points):
    """For a watcher's timeline [[value, t], ...]: (running max of values, times), for bisecting."""
    values, times, best = [], [], -math.inf
    for value, t in points:
        if value > best:
            best = value
            values.append(value)
            times.append(t)
    return values, times


def freshness(samples, timelines, *, every_watcher=True):
    """Milliseconds from each reported value until watchers held it or a newer one.

    ``samples``: {job: [[value, reported_at], ...]} from the publishers; ``timelines``: one
    {"job", "points": [[value, received_at], ...]} per watcher. With ``every_watcher`` one figure
    per (value, watcher); otherwise one per value, until *every* watcher of its job held it.
    A value a watcher never got counts as infinite.
    """
    by_job = defaultdict(list)
    for timeline in timelines:
        by_job[timeline["job"]].append(_holding(timeline["points"]))
    figures = []
    for job, reported in samples.items():
        watchers = by_job.get(job, [])
        for value, reported_at in reported:
            delays = []
            for values, times in watchers:
                i = bisect_left(values, value)
                delays.append(1000 * (times[i] - reported_at) if i < len(values) else math.inf)
            if every_watcher:
                figures.extend(delays)
            elif delays:
                figures.append(max(delays))
    return figures
