"""Settings that would start the service and then break every job are refused at start."""

import os
import subprocess

import pytest

from notifier.settings import Settings
from processes import BIN, process_env


@pytest.mark.parametrize("name, raw", [
    ("JOB_HISTORY_LENGTH", "0"), ("JOB_HISTORY_LENGTH", "-5"), ("JOB_HISTORY_LENGTH", "ten"),
    ("JOB_HISTORY_LENGTH", "2.5"), ("JOB_STALL_TIMEOUT", "0"), ("JOB_STALL_TIMEOUT", "-1"),
    ("JOB_STALL_TIMEOUT", "nan"), ("JOB_STALL_TIMEOUT", "inf"),
    # 0 or less would delete every finished job the moment it ends
    ("JOB_FINISHED_TTL", "0"), ("JOB_FINISHED_TTL", "-60"), ("JOB_FINISHED_TTL", "0.5"),
])
def test_a_setting_that_would_break_every_job_is_refused_naming_it(name, raw):
    with pytest.raises(ValueError, match=f"^{name} must be .* greater than 0, not '{raw}'$"):
        Settings.from_env({name: raw})


def test_the_defaults_and_sensible_values_are_taken():
    assert (Settings.from_env({}).history_length, Settings.from_env({}).stall_timeout) == (1000, 30.0)
    assert Settings.from_env({}).heartbeat_interval == 5.0
    assert Settings.from_env({}).submit_rate_limit == "60 per minute"
    assert (Settings.from_env({}).progress_min_interval, Settings.from_env({}).finished_ttl) == (0.1, 86400)
    chosen = Settings.from_env({"JOB_HISTORY_LENGTH": "10", "JOB_STALL_TIMEOUT": "0.5"})
    assert (chosen.history_length, chosen.stall_timeout) == (10, 0.5)


def test_a_worker_refuses_to_start_with_a_stall_timeout_of_zero():
    env = process_env(os.environ["REDIS_URL"], JOB_STALL_TIMEOUT="0")
    done = subprocess.run([os.path.join(BIN, "celery"), "-A", "tasks", "worker", "--pool=solo"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "JOB_STALL_TIMEOUT must be a number of seconds greater than 0, not '0'" in done.stderr
