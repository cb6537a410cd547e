"""The development Redis that `make run` starts keeps its data across restarts."""

import sys

import pytest

from processes import Process, free_port, process_env, wait_for


def start_local_redis(env, log_dir):
    proc = Process("local-redis", [sys.executable, "-m", "notifier.local_redis"], env, log_dir).start()
    wait_for(lambda: "Starting a local Redis" in proc.output() and answers(env["REDIS_URL"]), 20,
             message="the local Redis to answer")
    return proc


def answers(url):
    import redis

    try:
        return redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.RedisError:
        return False


@pytest.mark.e2e
def test_the_local_redis_keeps_every_job_across_a_restart(log_dir, tmp_path):
    from notifier.store import JobStore, connect

    url = f"redis://127.0.0.1:{free_port()}/0"
    env = process_env(url, REDIS_DATA_DIR=str(tmp_path))
    proc = start_local_redis(env, log_dir)
    try:
        job = JobStore(connect(url)).create("sleep", {"steps": 1})
    finally:
        proc.stop()  # a clean shutdown, as Ctrl-C on `make run` is
    assert list(tmp_path.iterdir()), "nothing was written to the data folder"
    proc = start_local_redis(env, log_dir)
    try:
        assert JobStore(connect(url)).get(job["job_id"]) == job
    finally:
        proc.stop()


def test_it_never_prints_the_password_of_redis_url(log_dir):
    # 127.0.0.2 refuses at once and is not one of the hosts it would start a Redis for.
    url = f"redis://:hunter2@127.0.0.2:{free_port()}/0"
    proc = Process("local-redis-remote", [sys.executable, "-m", "notifier.local_redis"],
                   process_env(url), log_dir).start()
    try:
        wait_for(lambda: "No Redis answers" in proc.output(), 20, message="its message")
        assert f"127.0.0.2:{url.rsplit(':', 1)[1].split('/')[0]}" in proc.output()
        assert "hunter2" not in proc.output()
    finally:
        proc.stop()
