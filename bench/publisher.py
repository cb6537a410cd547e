"""A publisher process: reports progress of many jobs at a set pace, as a Celery worker would.

    python -m bench.publisher notifier   # JobStore.create + ProgressReporter.progress (store + emit)
    python -m bench.publisher floor      # redis-py PUBLISH of the same payload, nothing else

Reads one JSON command per line on stdin and answers each with one JSON line on stdout (the same
commands as bench/node/publisher.js):

    {"cmd": "create", "n": N}  -> {"jobs": [ids]}
    {"cmd": "run", "jobs": [...], "rate": R or null (flat out), "duration": s, "count": N or null,
     "round": k, "min_interval": s, "sample_every": s}
        -> {"sent": n, "elapsed": s, "samples": {job: [[current, t], ...]}}

Each event's progress message is ``r=<round> t=<time.time() when reported>``, so a watcher can
tell its latency; ``samples`` says when each (sampled) value was reported, for freshness.
"""

import json
import os
import sys
import time
import uuid


class NotifierBackend:
    """The worker path: the product's job store and write-only emitter, one reporter per job."""

    def __init__(self):
        from notifier import reporter

        self.reporter_module = reporter
        _, self.store = reporter.worker_runtime()  # the worker's own wiring
        self.emitter = reporter.worker_emitter
        self.reporters = {}

    def create(self, n):
        return [self.store.create("sleep", {"steps": 1, "interval": 0})["job_id"] for _ in range(n)]

    def begin(self, jobs, min_interval):
        """Run ``jobs`` as a worker does: each started once by this process (it then holds the
        job, and only it may report on it), its throttle set for this round."""
        for job in jobs:
            if job not in self.reporters:
                reporter = self.reporter_module.ProgressReporter(job, self.store, self.emitter)
                if not reporter.start():
                    raise RuntimeError(f"job {job} is held by another publisher")
                self.reporters[job] = reporter
            self.reporters[job].min_interval = min_interval

    def report(self, job, value, message):
        self.reporters[job].progress(value, None, message)

    def flush(self, job, value, message):
        """Send a value the throttle may still hold (reporting current == total is never held)."""
        self.reporters[job].progress(value, value, message)


class FloorBackend:
    """One hop through Redis: PUBLISH the payload on the job's channel."""

    def __init__(self):
        import redis

        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.seq = {}

    def create(self, n):
        return [str(uuid.uuid4()) for _ in range(n)]

    def begin(self, jobs, min_interval):
        pass

    def report(self, job, value, message):
        seq = self.seq[job] = self.seq.get(job, 0) + 1
        self.redis.publish(job, json.dumps({"job_id": job, "state": "PROGRESS", "current": value,
                                            "seq": seq, "message": message}))

    def flush(self, job, value, message):
        pass


def run(backend, current, jobs, rate, duration, count=None, round=0, min_interval=0.0,
        sample_every=0.0):
    """Report values 1, 2, ... round-robin over ``jobs`` at ``rate`` per second (None: flat out)."""
    backend.begin(jobs, min_interval)
    samples = {job: [] for job in jobs}
    last_sample, last_message = {}, {}
    start = time.time()
    limit = count if count is not None else float("inf")
    sent = 0
    while sent < limit:
        now = time.time()
        if now - start >= duration:
            break
        if rate:
            due = start + sent / rate
            if due > now:
                time.sleep(due - now)
                continue
        job = jobs[sent % len(jobs)]
        value = current[job] = current.get(job, 0) + 1
        stamp = time.time()
        message = last_message[job] = f"r={round} t={stamp:.6f}"
        backend.report(job, value, message)
        if stamp - last_sample.get(job, 0.0) >= sample_every:
            samples[job].append([value, stamp])
            last_sample[job] = stamp
        sent += 1
    elapsed = time.time() - start
    if min_interval:
        for job, message in last_message.items():
            backend.flush(job, current[job], message)
    return {"sent": sent, "elapsed": elapsed, "samples": samples}


def main(kind):
    backend = NotifierBackend() if kind == "notifier" else FloorBackend()
    current = {}  # job -> the last value reported, kept across runs so values only grow
    for line in sys.stdin:
        if not line.strip():
            continue
        command = json.loads(line)
        name = command.pop("cmd")
        if name == "exit":
            break
        if name == "create":
            reply = {"jobs": backend.create(command["n"])}
        elif name == "run":
            reply = run(backend, current, **command)
        else:
            reply = {"error": f"unknown command {name}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1])
