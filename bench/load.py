"""Load benchmark: many watchers over many jobs on a private stack; prints a table of what arrived.

    python bench/load.py                       # 500 watchers over 50 jobs, about a minute
    python bench/load.py --watchers 50 --jobs 10 --steps 20 --interval 0.1

Starts its own redis-server, gunicorn (eventlet) and Celery worker on free loopback ports, stops
them when done (also on Ctrl-C), and stops by itself: every run has a deadline. Each watcher is a
real python-socketio client that subscribes with ``last_seq=-1`` and keeps every event; afterwards
each watcher's events, deduplicated by ``seq``, must be exactly 0..final for its job.
"""

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from clients import Watcher, submit  # noqa: E402
from processes import free_port, process_env, start_redis, start_web, start_worker  # noqa: E402


def run(watchers=500, jobs=50, steps=60, interval=0.2, concurrency=10, deadline=300, log_dir=None):
    """Run the load and return a dict of figures (raises nothing for lost events: it counts them)."""
    log_dir = log_dir or tempfile.mkdtemp(prefix="bench-")
    port = free_port()
    procs = [start_redis(port, log_dir)]
    try:
        env = process_env(f"redis://127.0.0.1:{port}/0", HEARTBEAT_INTERVAL=5,
                          PROGRESS_MIN_INTERVAL=0, JOB_STALL_TIMEOUT=60)
        procs.append(start_web(env, log_dir))
        url = procs[-1].url
        procs.append(start_worker(env, log_dir, concurrency=concurrency))

        clients = [Watcher(url, reconnection=False) for _ in range(watchers)]
        started = time.monotonic()
        with ThreadPoolExecutor(32) as pool:
            list(pool.map(lambda w: w.connect(), clients))
        connect_time = time.monotonic() - started

        job_ids = [submit(url, steps=steps, interval=interval)["job_id"] for _ in range(jobs)]
        assignment = [(client, job_ids[n % jobs]) for n, client in enumerate(clients)]
        refused = []

        def subscribe(pair):
            client, job_id = pair
            ack = client.subscribe(job_id, last_seq=-1, timeout=60)
            if not ack.get("ok"):
                refused.append(ack)

        with ThreadPoolExecutor(32) as pool:
            list(pool.map(subscribe, assignment))

        end = time.monotonic() + deadline
        while time.monotonic() < end and not all(c.finished(j) for c, j in assignment):
            time.sleep(0.5)
        elapsed = time.monotonic() - started

        finals, lost, duplicated, received = 0, 0, 0, 0
        for client, job_id in assignment:
            events = client.job_events(job_id)
            seqs = [data["seq"] for _, data in events]
            received += len(seqs)
            done = client.finished(job_id)
            if done:
                finals += 1
                final_seq = done[0]["seq"]
                lost += len(set(range(final_seq + 1)) - set(seqs))
            duplicated += len(seqs) - len(set(seqs))
        for client in clients:
            client.close()
        return {
            "watchers": watchers, "jobs": jobs, "steps per job": steps,
            "worker concurrency": concurrency, "connect time (s)": round(connect_time, 1),
            "run time (s)": round(elapsed, 1), "subscribe refused": len(refused),
            "events received": received, "final events received": finals,
            "watchers without final": watchers - finals, "lost (after seq dedupe)": lost,
            "duplicates dropped by seq": duplicated,
            "events/s delivered": round(received / elapsed),
        }
    finally:
        for proc in reversed(procs):
            proc.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between steps")
    parser.add_argument("--concurrency", type=int, default=10, help="Celery pool processes")
    parser.add_argument("--deadline", type=float, default=300, help="give up after this many seconds")
    args = parser.parse_args()
    figures = run(args.watchers, args.jobs, args.steps, args.interval, args.concurrency, args.deadline)
    width = max(map(len, figures))
    print(f"{'figure':<{width}}  value")
    print(f"{'-' * width}  -----")
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")
    ok = figures["watchers without final"] == 0 and figures["lost (after seq dedupe)"] == 0
    print("\nRESULT:", "every watcher got every event and its final one" if ok else "EVENTS LOST")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
