"""The built-in job kinds. Add a kind by writing one more ``@job_kind`` function here."""

import math
import time

from notifier.params import Param

from .registry import job_kind


class StepFailed(RuntimeError):
    """The failure a ``sleep`` job was asked to simulate."""


def _fail_at_within_steps(params):
    if params.get("fail_at") is not None and params["fail_at"] > params["steps"]:
        return {"fail_at": "must not be greater than steps"}
    return None


@job_kind(
    "sleep",
    Param("steps", int, 1, 10000, default=10, help="how many steps to report"),
    Param("interval", float, 0, 60, default=0.5, help="seconds to sleep between steps"),
    Param("fail_at", int, 1, 10000, required=False, help="step at which the job fails (optional)"),
    title="Sleep",
    check=_fail_at_within_steps,
)
def sleep(reporter, steps, interval, fail_at=None):
    """Sleeps between steps and reports each one: a predictable job for demos and tests."""
    for step in reporter.steps(steps):
        time.sleep(interval)
        if step == fail_at:
            raise StepFailed(f"failed at step {step}, as asked")
    return {"steps": steps}


SEGMENT = 1_000_000


def _base_primes(limit):
    """The primes up to ``limit`` (small: up to the square root of the job's limit)."""
    sieve = bytearray([1]) * (limit + 1)
    sieve[:2] = b"\0\0"
    for p in range(2, math.isqrt(limit) + 1):
        if sieve[p]:
            sieve[p * p::p] = bytes(len(range(p * p, limit + 1, p)))
    return [p for p in range(2, limit + 1) if sieve[p]]


@job_kind(
    "primes",
    Param("limit", int, 2, 100_000_000, help="count the primes up to this number"),
    title="Count primes",
)
def primes(reporter, limit):
    """Counts the primes up to a limit with a segmented sieve, reporting each segment."""
    base = _base_primes(math.isqrt(limit))
    segments = math.ceil((limit - 1) / SEGMENT)
    count = 0
    for index in range(segments):
        low = 2 + index * SEGMENT
        high = min(low + SEGMENT, limit + 1)  # this segment covers [low, high)
        sieve = bytearray([1]) * (high - low)
        for p in base:
            if p * p >= high:
                break
            start = max(p * p, (low + p - 1) // p * p)
            sieve[start - low::p] = bytes(len(range(start, high, p)))
        count += sieve.count(1)
        reporter.progress(index + 1, segments, f"{count} primes up to {high - 1}")
    return {"count": count}
