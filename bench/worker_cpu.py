"""CPU per ``progress()`` in a worker, beside what a bare Redis round trip costs on this machine.

    python -m bench.worker_cpu             # 20,000 calls each
    python -m bench.worker_cpu --calls 5000

Runs against a private redis-server (started and stopped here), in this one process, with the
worker's own wiring (``notifier.reporter.worker_runtime``). CPU is user + system time of this
process (``time.process_time``), so the socket calls count; Redis's own time does not. Prints a
markdown table.
"""

import argparse
import os
import tempfile
import time


def per_call(calls, function):
    """(CPU µs, wall µs) per call of ``function(i)``, over ``calls`` calls after a warm-up."""
    for i in range(min(500, calls)):
        function(i)
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(calls):
        function(i)
    return (1e6 * (time.process_time() - cpu) / calls, 1e6 * (time.perf_counter() - wall) / calls)


def measure(calls):
    from notifier import reporter

    _, store = reporter.worker_runtime()

    def started(min_interval):
        job = store.create("sleep", {"steps": 1, "interval": 0})["job_id"]
        progress = reporter.ProgressReporter(job, store, reporter.worker_emitter, min_interval)
        if not progress.start():  # STARTED, and its keep-alive thread running, as in a worker
            raise RuntimeError(f"job {job} did not start")
        return progress

    every, throttled = started(0.0), started(0.1)  # 0.1 s: the default PROGRESS_MIN_INTERVAL
    ping = store.redis.register_script("return 1")
    try:
        rows = [
            ("`progress()`, every call written and published (throttle off)",
             per_call(calls, lambda i: every.progress(i, 10 ** 9, "step"))),
            ("`progress()` with the default throttle, called flat out (most calls coalesced)",
             per_call(calls, lambda i: throttled.progress(i, 10 ** 9, "step"))),
            ("redis-py `EVALSHA` of `return 1` (a bare round trip, for scale)",
             per_call(calls, lambda i: ping())),
            ("redis-py `PUBLISH` of 300 bytes (what a bare emit sends)",
             per_call(calls, lambda i: store.redis.publish("bench:nobody", "x" * 300))),
        ]
    finally:
        every.stop()
        throttled.stop()
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.worker_cpu",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    args = parser.parse_args(argv)

    from . import procs

    redis, url = procs.redis_server(tempfile.mkdtemp(prefix="bench-worker-cpu-"))
    try:
        os.environ.update(REDIS_URL=url)
        for name in ("SOCKETIO_MESSAGE_QUEUE", "PROGRESS_MIN_INTERVAL"):
            os.environ.pop(name, None)
        rows = measure(args.calls)
    finally:
        redis.stop()
    print(f"| per call ({args.calls:,} calls) | CPU µs | wall µs |")
    print("|---|---:|---:|")
    for label, (cpu, wall) in rows:
        print(f"| {label} | {cpu:.1f} | {wall:.1f} |")


if __name__ == "__main__":
    main()
