"""The terminal client, run for real as a subprocess against the real processes."""

import json
import os
import re
import signal
import subprocess
import sys

import pytest
import requests
from clients import api_job, cancel, submit
from processes import ROOT, free_port, wait_for

pytestmark = pytest.mark.e2e

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


# Where the client keeps the cancel tokens it is given: never the real user's home.
STATE_HOME = os.path.join(ROOT, "test-artifacts", "jobclient-state")


def cli_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "NOTIFIER_URL"}
    env.update({"PYTHONUNBUFFERED": "1", "COLUMNS": "100", "XDG_STATE_HOME": STATE_HOME, **extra})
    return env


def cli(stack, *args, env=None, timeout=60, stdin=""):
    """Run ``python -m jobclient --url <stack> ARGS`` to its end."""
    return subprocess.run([sys.executable, "-m", "jobclient", "--url", stack.url, *args], cwd=ROOT,
                          env=env or cli_env(), capture_output=True, text=True, timeout=timeout,
                          input=stdin)


def watching(stack, job_id):
    """``python -m jobclient watch JOB_ID --json`` started, to be read from and stopped by the test."""
    return subprocess.Popen([sys.executable, "-m", "jobclient", "--url", stack.url, "watch", job_id,
                             "--json"], cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def snapshots(stdout):
    return [json.loads(line) for line in stdout.splitlines()]


def test_submit_prints_the_job_id_and_its_url(stack):
    run = cli(stack, "submit", "sleep", "--steps", "3", "--interval", "0.05")

    assert run.returncode == 0, run.stderr
    job_id, url = run.stdout.splitlines()
    assert re.fullmatch(UUID, job_id)
    assert url == f"{stack.url}/jobs/{job_id}"
    assert requests.get(url, timeout=5).status_code == 200
    job = api_job(stack.url, job_id)
    assert (job["kind"], job["params"]) == ("sleep", {"steps": 3, "interval": 0.05})


def test_server_url_comes_from_notifier_url(stack):
    run = subprocess.run([sys.executable, "-m", "jobclient", "submit", "sleep", "--steps", "1",
                          "--interval", "0"], cwd=ROOT, env=cli_env(NOTIFIER_URL=stack.url),
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[1].startswith(f"{stack.url}/jobs/")


def test_the_submitter_cancels_with_the_kept_token_and_another_user_cannot(stack, tmp_path):
    mine, theirs = cli_env(XDG_STATE_HOME=str(tmp_path / "me")), cli_env(XDG_STATE_HOME=str(tmp_path / "them"))
    run = cli(stack, "submit", "sleep", "--steps", "300", "--interval", "0.1", "--json", env=mine)
    assert run.returncode == 0, run.stderr
    job = json.loads(run.stdout)
    assert "cancel_token" not in job  # stdout is snapshots; the token goes to the user's state
    kept = tmp_path / "me" / "jobclient" / "cancel-tokens.json"
    assert kept.stat().st_mode & 0o777 == 0o600 and kept.parent.stat().st_mode & 0o777 == 0o700
    [[job_id, token]] = json.loads(kept.read_text())
    assert job_id == job["job_id"] and token not in run.stdout + run.stderr

    refused = cli(stack, "cancel", job_id, env=theirs)
    assert refused.returncode == 2
    assert "job not cancelled (403)" in refused.stderr and "--token" in refused.stderr
    wrong = cli(stack, "cancel", job_id, "--token", "x" * 43, env=mine)
    assert wrong.returncode == 2 and "not this job's cancel token" in wrong.stderr
    assert api_job(stack.url, job_id)["state"] in ("PENDING", "STARTED", "PROGRESS")

    done = cli(stack, "cancel", job_id, env=mine)
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(r"REVOKED: it had not started|cancel requested: .*", done.stdout.strip())
    wait_for(lambda: api_job(stack.url, job_id)["state"] == "REVOKED", 20, message="the job to stop")
    again = cli(stack, "cancel", job_id, env=mine)
    assert again.returncode == 2 and "job not cancelled (409)" in again.stderr


def test_cancel_takes_a_token_given_explicitly(stack, tmp_path):
    job = submit(stack.url, steps=300, interval=0.1)
    run = cli(stack, "cancel", job["job_id"], "--token", job["cancel_token"], "--json",
              env=cli_env(XDG_STATE_HOME=str(tmp_path)))
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["job_id"] == job["job_id"]
    wait_for(lambda: api_job(stack.url, job["job_id"])["state"] == "REVOKED", 20, message="the job to stop")


def test_cancel_reads_the_token_from_standard_input_when_told_to(stack, tmp_path):
    job = submit(stack.url, steps=300, interval=0.1)
    run = cli(stack, "cancel", job["job_id"], "--token", "-", "--json",
              env=cli_env(XDG_STATE_HOME=str(tmp_path)), stdin=job["cancel_token"] + "\n")
    assert run.returncode == 0, run.stderr
    wait_for(lambda: api_job(stack.url, job["job_id"])["state"] == "REVOKED", 20, message="the job to stop")


def test_a_token_that_cannot_be_kept_is_shown_once_with_the_command_that_cancels(stack, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    run = cli(stack, "submit", "sleep", "--steps", "300", "--interval", "0.1",
              env=cli_env(XDG_STATE_HOME=str(blocked)))
    assert run.returncode == 0, run.stderr
    job_id = run.stdout.splitlines()[0]
    [command] = re.findall(r"echo (\S+) \| python -m jobclient cancel (\S+) --token -", run.stderr)
    assert command[1] == job_id
    cancelled = cli(stack, "cancel", job_id, "--token", "-", env=cli_env(XDG_STATE_HOME=str(blocked)),
                    stdin=command[0] + "\n")
    assert cancelled.returncode == 0, cancelled.stderr
    wait_for(lambda: api_job(stack.url, job_id)["state"] == "REVOKED", 20, message="the job to stop")


def test_watch_prints_each_message_and_exits_0_on_success(stack):
    job = submit(stack.url, steps=5, interval=0.1)

    run = cli(stack, "watch", job["job_id"])

    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    messages = [line.split(None, 2)[2] for line in lines if line.startswith("#")]
    assert messages == ["queued", "started", *(f"step {n} of 5" for n in range(1, 6)), "done"]
    assert lines[-1].startswith("SUCCESS in ") and lines[-1].endswith("steps=5")


def test_watch_json_prints_every_snapshot_once_in_seq_order(stack):
    job = submit(stack.url, steps=6, interval=0.1)

    run = cli(stack, "watch", job["job_id"], "--json")

    assert run.returncode == 0, run.stderr
    seen = snapshots(run.stdout)
    assert [s["seq"] for s in seen] == list(range(len(seen)))
    assert {s["job_id"] for s in seen} == {job["job_id"]}
    assert seen[-1]["state"] == "SUCCESS" and seen[-1]["result"] == {"steps": 6}
    assert seen[-1] == api_job(stack.url, job["job_id"])
    assert [s["current"] for s in seen if s["state"] == "PROGRESS"] == [1, 2, 3, 4, 5, 6]


def test_watch_over_long_polling(stack):
    job = submit(stack.url, steps=3, interval=0.1)
    run = cli(stack, "watch", job["job_id"], "--json", "--transport", "polling")
    assert run.returncode == 0, run.stderr
    assert snapshots(run.stdout)[-1]["state"] == "SUCCESS"


def test_watch_exits_non_zero_with_the_error_when_the_job_fails(stack):
    run = cli(stack, "submit", "sleep", "--steps", "4", "--interval", "0.05", "--fail-at", "2",
              "--watch")

    assert run.returncode == 1
    assert run.stdout.splitlines()[-1].startswith("FAILURE after ")
    assert "StepFailed: failed at step 2, as asked" in run.stdout


def test_watch_exits_non_zero_when_the_job_is_cancelled(stack):
    job = submit(stack.url, steps=200, interval=0.1)
    watcher = watching(stack, job["job_id"])
    try:
        first = json.loads(watcher.stdout.readline())  # it is following the job
        assert first["seq"] == 0
        wait_for(lambda: api_job(stack.url, job["job_id"])["state"] == "PROGRESS", 20,
                 message="the job to run")
        assert cancel(stack.url, job).status_code == 202
        out, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
    assert watcher.returncode == 3, err
    assert json.loads(out.splitlines()[-1])["state"] == "REVOKED"


def test_watch_exits_4_when_the_job_is_lost(stack):
    from dataclasses import replace

    from notifier.settings import Settings
    from notifier.store import JobStore

    store = JobStore.from_settings(replace(Settings.from_env(), redis_url=stack.redis_url))
    job_id = store.create("sleep", {"steps": 3, "interval": 0})["job_id"]  # no worker runs it
    store.update(job_id, state="STARTED", message="started")
    store.update(job_id, state="LOST", message="lost", error="no sign of life from its worker for 30 s")

    run = cli(stack, "watch", job_id)

    assert run.returncode == 4, run.stderr
    assert run.stdout.splitlines()[-1].startswith("LOST after ")
    assert "no sign of life from its worker" in run.stdout


def test_watch_exits_130_when_interrupted(stack):
    job = submit(stack.url, steps=300, interval=0.1)
    watcher = watching(stack, job["job_id"])
    try:
        assert json.loads(watcher.stdout.readline())["seq"] == 0  # it is following the job
        watcher.send_signal(signal.SIGINT)  # Ctrl-C
        _, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
        cancel(stack.url, job)  # the stack is shared: stop the job
    assert watcher.returncode == 130, err
    assert "Traceback" not in err


def test_watch_resumes_without_gaps_after_the_server_restarts(stack, processes):
    port = free_port()
    web = processes.web(stack.env, port=port)  # same Redis and worker as the stack
    job = submit(web.url, steps=30, interval=0.2)
    watcher = subprocess.Popen([sys.executable, "-m", "jobclient", "--url", web.url, "watch",
                                job["job_id"], "--json"], cwd=ROOT, env=cli_env(),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = [json.loads(watcher.stdout.readline()) for _ in range(4)]  # up to a few steps in
        web.kill()
        wait_for(lambda: api_job(stack.url, job["job_id"])["seq"] >= seen[-1]["seq"] + 5, 20,
                 message="the job to move on while the watcher is cut off")
        processes.web(stack.env, port=port)
        out, err = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, err
    seqs = [s["seq"] for s in seen + snapshots(out)]
    assert seqs == list(range(api_job(stack.url, job["job_id"])["seq"] + 1))


def test_watching_a_finished_job_reports_it_at_once(stack):
    job = submit(stack.url, steps=2, interval=0)
    wait_for(lambda: api_job(stack.url, job["job_id"])["state"] == "SUCCESS", 20, message="the job")

    run = cli(stack, "watch", job["job_id"], "--json")

    assert run.returncode == 0, run.stderr
    assert snapshots(run.stdout)[-1] == api_job(stack.url, job["job_id"])


def test_a_live_progress_bar_on_a_terminal(stack):
    job = submit(stack.url, steps=4, interval=0.1)
    # rich draws its live bar only on a terminal; TTY_COMPATIBLE tells it this pipe is one.
    run = cli(stack, "watch", job["job_id"], env=cli_env(TTY_COMPATIBLE="1"))
    assert run.returncode == 0, run.stderr
    assert "━" in run.stdout and "4/4" in run.stdout


def test_bad_input_exits_2_naming_the_problem(stack):
    run = cli(stack, "submit", "sleep", "--steps", "0")
    assert run.returncode == 2
    assert "steps: must be between 1 and 10000" in run.stderr

    run = cli(stack, "watch", "00000000-0000-4000-8000-000000000000")
    assert run.returncode == 2
    assert "no job with id 00000000-0000-4000-8000-000000000000" in run.stderr


def test_an_unreachable_server_exits_2(stack):
    run = subprocess.run([sys.executable, "-m", "jobclient", "--url", "http://127.0.0.1:9",
                          "watch", "00000000-0000-4000-8000-000000000000"], cwd=ROOT,
                         env=cli_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert "cannot connect to http://127.0.0.1:9" in run.stderr


HIDE_SERVER_PACKAGES = """
import runpy, sys

class Hidden:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"flask", "flask_socketio", "flask_wtf", "flask_limiter", "celery",
                                  "kombu", "eventlet", "gevent", "webapp", "tasks"}:
            raise ImportError(f"{name} is hidden from this client")

sys.meta_path.insert(0, Hidden())
sys.argv[0] = "jobclient"
runpy.run_module("jobclient", run_name="__main__", alter_sys=True)
"""


def test_the_client_runs_without_flask_or_celery_and_takes_its_kinds_from_the_server(stack):
    run = subprocess.run([sys.executable, "-c", HIDE_SERVER_PACKAGES, "--url", stack.url,
                          "submit", "sleep", "--steps", "3", "--interval", "0.05", "--watch", "--json"],
                         cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert [s["seq"] for s in snapshots(run.stdout)] == list(range(snapshots(run.stdout)[-1]["seq"] + 1))

    helped = subprocess.run([sys.executable, "-c", HIDE_SERVER_PACKAGES, "--url", stack.url,
                             "submit", "primes", "--help"],
                            cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    assert "--limit" in helped.stdout and "2–100000000" in helped.stdout
