"""The benchmark's publisher, which `make bench` runs by hand, reports the way a worker does."""

from bench import publisher


def test_the_benchmark_publisher_reports_on_its_jobs_round_after_round(store):
    backend = publisher.NotifierBackend()
    jobs = backend.create(2)
    current = {}
    try:
        for round, min_interval in ((1, 0.0), (2, 0.1)):  # a second round reuses its jobs
            reply = publisher.run(backend, current, jobs, rate=None, duration=30, count=10,
                                  round=round, min_interval=min_interval)
            assert reply["sent"] == 10
    finally:
        for reporter in backend.reporters.values():
            reporter.stop()
    for job in jobs:
        snapshot = store.get(job)
        assert (snapshot["state"], snapshot["current"]) == ("PROGRESS", current[job]), snapshot
        assert snapshot["message"].startswith("r=2 ")
