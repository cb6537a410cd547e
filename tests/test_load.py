"""A small version of bench/load.py: many real watchers over many jobs, nothing lost."""

import importlib.util
import os

import pytest

from processes import ROOT

pytestmark = pytest.mark.e2e


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", os.path.join(ROOT, "bench", "load.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fifty_watchers_over_ten_jobs_all_get_every_event_and_their_final_one(log_dir):
    figures = _bench().run(watchers=50, jobs=10, steps=20, interval=0.1, concurrency=4,
                           deadline=120, log_dir=log_dir)
    assert figures["subscribe refused"] == 0, figures
    assert figures["watchers without final"] == 0, figures
    assert figures["lost (after seq dedupe)"] == 0, figures
    # Each watcher replays from seq 0 and then follows live: at least every event of its job.
    assert figures["events received"] >= 50 * 22, figures
