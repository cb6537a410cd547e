"""Nothing lost: each test breaks a real process, connection or Redis and checks every event arrives.

Every test starts its own redis-server, web process and Celery worker, so a crash in one test cannot
leak into the next; each runs with the web process served by gunicorn's eventlet and gevent workers.
"""

import contextlib
import os
import signal
import time
from types import SimpleNamespace

import pytest
import requests

from clients import (ReplayingWatcher, Watcher, api_job, cancel, in_seq_order, kill_transport, metric,
                     submit)
from processes import children, free_port, process_env, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.web_servers("eventlet", "gevent")]

FINAL = {"SUCCESS", "FAILURE", "REVOKED", "LOST"}
STALL_TIMEOUT = 3  # seconds, for the tests that need a job declared LOST (or not) quickly


def start_stack(processes, *, worker=True, concurrency=2, redis_options=None, worker_env=None, **env):
    """A private redis-server, a web process and (unless told) a worker, all on free ports."""
    redis_port = free_port()
    redis_proc = processes.redis(redis_port, **(redis_options or {}))
    url = f"redis://127.0.0.1:{redis_port}/0"
    env = process_env(url, **{"HEARTBEAT_INTERVAL": 1, **env})
    web = processes.web(env)
    stack = SimpleNamespace(redis=redis_proc, redis_port=redis_port, redis_url=url, env=env, web=web,
                            worker=None)
    if worker:
        stack.worker = processes.worker({**env, **(worker_env or {})}, concurrency=concurrency)
    return stack


@contextlib.contextmanager
def following(url, job_id, *, under_way=3):
    """A Watcher following the job from seq 0 once it is under way; closed afterwards."""
    watcher = Watcher(url).connect()
    try:
        assert watcher.subscribe(job_id, last_seq=-1)["ok"]
        wait_for(lambda: len(watcher.seqs(job_id)) >= under_way, 30, message="the job to be under way")
        yield watcher
    finally:
        watcher.close()


def assert_gap_free(events, final_seq):
    """Seen in seq order (duplicates dropped), the events are exactly 0..final_seq."""
    assert in_seq_order(events) == list(range(final_seq + 1)), [d["seq"] for _, d in events]


def test_a_client_cut_off_mid_job_gets_the_missed_events_on_reconnect(processes):
    stack = start_stack(processes)
    job = submit(stack.web.url, steps=60, interval=0.1)
    job_id = job["job_id"]
    first = Watcher(stack.web.url, reconnection=False).connect()
    try:
        assert first.subscribe(job_id, last_seq=-1)["ok"]
        wait_for(lambda: len(first.seqs(job_id)) >= 5, 30, message="a few events before the cut")
        kill_transport(first)
        wait_for(lambda: not first.sio.connected, 10, message="the cut client to notice")
        seen = first.job_events(job_id)
        last_seq = max(data["seq"] for _, data in seen)
        wait_for(lambda: api_job(stack.web.url, job_id)["seq"] >= last_seq + 10, 30,
                 message="the job to move on while the client is away")
    finally:
        first.close()
    second = Watcher(stack.web.url).connect()
    try:
        ack = second.subscribe(job_id, last_seq=last_seq)
        assert ack["ok"] and ack["job"]["seq"] >= last_seq + 10
        final = second.wait_finished(job_id, 60)
        assert final["state"] == "SUCCESS"
        combined = seen + second.job_events(job_id)
        assert_gap_free(combined, final["seq"])
        # The replay started right after what the first connection saw: nothing came twice.
        assert sorted(d["seq"] for _, d in combined) == list(range(final["seq"] + 1))
        assert len(second.finished(job_id)) == 1
    finally:
        second.close()


def test_killing_the_web_process_mid_job_loses_nothing_after_it_restarts(processes):
    stack = start_stack(processes)
    job_id = submit(stack.web.url, steps=80, interval=0.1)["job_id"]
    watcher = ReplayingWatcher(stack.web.url, reconnection_delay=0.5, reconnection_delay_max=1)
    watcher.connect()
    try:
        assert watcher.follow(job_id)["ok"]
        wait_for(lambda: len(watcher.seqs(job_id)) >= 5, 30, message="a few events before the crash")
        stack.web.kill()
        before = max(watcher.seqs(job_id))
        processes.web(stack.env, port=stack.web.port)  # same port: the client reconnects by itself
        final = watcher.wait_finished(job_id, 60)
        assert watcher.connections() >= 2, "the client never reconnected"
        assert final["state"] == "SUCCESS" and final["seq"] > before
        assert_gap_free(watcher.job_events(job_id), final["seq"])
        assert len(watcher.finished(job_id)) == 1
    finally:
        watcher.close()


def test_a_job_whose_worker_process_is_killed_is_rerun_by_the_next_one(processes):
    # Killing the pool process running the task: the worker's parent requeues it (acks_late +
    # reject_on_worker_lost) and a new pool process takes over once the dead one's lease ran out.
    stack = start_stack(processes, concurrency=1, JOB_STALL_TIMEOUT=30)
    job_id = submit(stack.web.url, steps=30, interval=0.2)["job_id"]
    with following(stack.web.url, job_id, under_way=4) as watcher:
        [child] = children(stack.worker.pid)
        os.kill(child, signal.SIGKILL)
        final = watcher.wait_finished(job_id, 90)
        assert final["state"] == "SUCCESS", final
        events = watcher.job_events(job_id)
        assert_gap_free(events, final["seq"])
        messages = [data["message"] for _, data in events]
        assert "restarted (attempt 2)" in messages, messages
        assert [d["state"] for _, d in events].count("SUCCESS") == 1


def test_a_job_whose_whole_worker_dies_is_declared_lost_and_stays_lost(processes):
    stack = start_stack(processes, JOB_STALL_TIMEOUT=3, CELERY_VISIBILITY_TIMEOUT=2)
    job_id = submit(stack.web.url, steps=100, interval=0.2)["job_id"]
    with following(stack.web.url, job_id) as watcher:
        stack.worker.kill()  # the whole group, parent included: nobody is left to requeue it
        final = watcher.wait_finished(job_id, 30)
        assert final["state"] == "LOST" and "no sign of life" in final["error"]
        assert_gap_free(watcher.job_events(job_id), final["seq"])
        assert metric(stack.web.url, "notifier_rooms_open") == 0
        # The unacknowledged message comes back to the next worker, which must not revive the job.
        worker = processes.worker(stack.env)
        wait_for(lambda: f"job {job_id} is LOST: not running it again" in worker.output(), 60,
                 message="the redelivered job to be refused")
        after = api_job(stack.web.url, job_id)
        assert (after["state"], after["seq"]) == ("LOST", final["seq"])
        assert len(watcher.finished(job_id)) == 1


def test_a_job_whose_whole_worker_dies_is_rerun_by_another_worker(processes):
    # Stall detection is slow here, so the redelivery (visibility timeout) wins: the job is re-run.
    stack = start_stack(processes, concurrency=1, JOB_STALL_TIMEOUT=60, CELERY_VISIBILITY_TIMEOUT=3)
    job_id = submit(stack.web.url, steps=40, interval=0.1)["job_id"]
    with following(stack.web.url, job_id) as watcher:
        stack.worker.kill()
        processes.worker(stack.env, concurrency=1)
        final = watcher.wait_finished(job_id, 90)
        assert final["state"] == "SUCCESS", final
        events = watcher.job_events(job_id)
        assert_gap_free(events, final["seq"])
        assert "restarted (attempt 2)" in [data["message"] for _, data in events]


def test_cancelling_a_running_job_stops_it_at_its_next_step(processes):
    stack = start_stack(processes)
    job = submit(stack.web.url, steps=200, interval=0.1)
    job_id = job["job_id"]
    with following(stack.web.url, job_id) as watcher:
        response = cancel(stack.web.url, job)
        assert response.status_code == 202
        final = watcher.wait_finished(job_id, 20)
        assert final["state"] == "REVOKED" and final["current"] < 200
        assert_gap_free(watcher.job_events(job_id), final["seq"])
        wait_for(lambda: metric(stack.web.url, "notifier_rooms_open") == 0, 10,
                 message="the job's room to be closed")
        again = cancel(stack.web.url, job)
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_final"


def test_cancelling_a_queued_job_revokes_it_before_it_starts(processes):
    stack = start_stack(processes, concurrency=1)
    busy_job = submit(stack.web.url, steps=300, interval=0.1)
    busy = busy_job["job_id"]
    wait_for(lambda: api_job(stack.web.url, busy)["state"] == "PROGRESS", 30,
             message="the only pool process to be busy")
    queued_job = submit(stack.web.url, steps=5, interval=0.1)
    queued = queued_job["job_id"]
    watcher = Watcher(stack.web.url).connect()
    try:
        assert watcher.subscribe(queued, last_seq=-1)["ok"]
        response = cancel(stack.web.url, queued_job)
        assert response.status_code == 202 and response.json()["state"] == "REVOKED"
        final = watcher.wait_finished(queued, 10)
        assert final["state"] == "REVOKED" and final["seq"] == 1
        # Free the worker: it then takes the revoked job off the queue and must skip it.
        assert cancel(stack.web.url, busy_job).status_code == 202
        wait_for(lambda: f"job {queued} is REVOKED: not running it again" in stack.worker.output(),
                 60, message="the worker to skip the revoked job")
        after = api_job(stack.web.url, queued)
        assert (after["state"], after["seq"]) == ("REVOKED", 1)
        assert [d["state"] for _, d in watcher.job_events(queued)] == ["PENDING", "REVOKED"]
        assert cancel(stack.web.url, queued_job).status_code == 409
    finally:
        watcher.close()


def submitted_total(url):
    """notifier_jobs_submitted_total summed over its kind labels."""
    lines = requests.get(f"{url}/metrics", timeout=5).text.splitlines()
    return sum(float(line.split()[-1]) for line in lines
               if line.startswith("notifier_jobs_submitted_total{"))


def _csrf_token(html):
    marker = 'name="csrf_token" type="hidden" value="'
    start = html.index(marker) + len(marker) if marker in html else None
    if start is None:  # attribute order is the template's business
        import re
        return re.search(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"',
                         html).group(1)
    return html[start:html.index('"', start)]


def test_a_redis_outage_is_survived_without_restarting_anything(processes):
    stack = start_stack(processes)
    url = stack.web.url
    watcher = Watcher(url).connect()
    browser = requests.Session()
    try:
        job_id = submit(url, steps=3, interval=0)["job_id"]
        assert watcher.subscribe(job_id, last_seq=-1)["ok"]
        watcher.wait_finished(job_id)
        token = _csrf_token(browser.get(url + "/", timeout=5).text)
        submitted = submitted_total(url)

        stack.redis.stop()
        health = requests.get(url + "/healthz", timeout=10)
        assert health.status_code == 503 and health.json()["status"] == "unavailable"
        # It names what is down, never where it is.
        assert health.json()["redis"] == "unreachable"
        assert str(stack.redis_port) not in health.text and "127.0.0.1" not in health.text
        page = requests.get(url + "/", timeout=10)
        assert page.status_code == 200 and "csrf_token" in page.text
        api = requests.post(url + "/api/jobs", json={"kind": "sleep", "params": {"steps": 1}},
                            timeout=15)
        assert api.status_code == 503, api.text
        assert api.json()["error"]["code"] == "unavailable"
        assert "nothing was submitted" in api.json()["error"]["message"]
        form = browser.post(url + "/jobs", data={"csrf_token": token, "kind": "sleep",
                                                  "sleep-steps": "1", "sleep-interval": "0"},
                            allow_redirects=False, timeout=15)
        assert form.status_code == 503 and "nothing was" in form.text
        assert submitted_total(url) == submitted
        # A subscribe cannot read the job now: an answer that says to retry, on a live connection.
        refused = watcher.subscribe(job_id, last_seq=-1)
        assert refused["ok"] is False and refused["error"]["code"] == "unavailable", refused
        beats = len(watcher.heartbeats())
        wait_for(lambda: len(watcher.heartbeats()) >= beats + 2, 10,
                 message="heartbeats during the outage")
        assert watcher.sio.connected

        processes.redis(stack.redis_port)  # empty, as a restarted cache-only Redis would be

        def accepted():
            response = requests.post(url + "/api/jobs", timeout=15,
                                     json={"kind": "sleep", "params": {"steps": 30, "interval": 0.1}})
            return response.json() if response.status_code == 202 else None

        job = wait_for(accepted, 30, 0.5, message="submissions to be accepted again")
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        # No last_seq: whatever arrives now came live through the message queue, not from history.
        ack = watcher.subscribe(job["job_id"])
        assert ack["ok"]
        final = watcher.wait_finished(job["job_id"], 60)
        assert final["state"] == "SUCCESS"
        # Events the web process missed while re-subscribing are replayed to the room from the
        # store, so some may come twice; in seq order, every one after the ack's is there.
        received = watcher.job_events(job["job_id"])
        after_ack = [seq for seq in in_seq_order(received) if seq > ack["job"]["seq"]]
        assert after_ack == list(range(ack["job"]["seq"] + 1, final["seq"] + 1)), received
        assert [name for name, _ in watcher.events].count("connect") == 1, "the client reconnected"
    finally:
        watcher.close()


def test_a_redis_outage_longer_than_the_stall_timeout_turns_no_healthy_job_lost(processes, tmp_path):
    # The web's stall check comes back before the worker does (its reconnect back-off is longer):
    # made certain here by holding the worker's pool process still until the check has run.
    stack = start_stack(processes, concurrency=1, redis_options={"data_dir": str(tmp_path)},
                        JOB_STALL_TIMEOUT=STALL_TIMEOUT)
    job_id = submit(stack.web.url, steps=30, interval=0.2)["job_id"]
    wait_for(lambda: api_job(stack.web.url, job_id)["current"] >= 3, 30, message="the job under way")
    [child] = children(stack.worker.pid)
    os.kill(child, signal.SIGSTOP)
    try:
        stack.redis.stop()  # a clean shutdown: the append-only file keeps every job
        wait_for(lambda: "stalled-job check could not reach Redis" in stack.web.output(), 10,
                 message="the stall check to notice the outage")
        time.sleep(STALL_TIMEOUT + 1)  # the outage itself: longer than the stall timeout
        processes.redis(stack.redis_port, data_dir=str(tmp_path))
        wait_for(lambda: f"job {job_id} declared LOST" in stack.web.output()
                 or "job store reachable again" in stack.web.output(), 10,
                 message="the stall check's first look after the outage")
    finally:
        os.kill(child, signal.SIGCONT)
    answers = []  # the web may answer 503 while its own connections come back

    def ended():
        answers.append(api_job(stack.web.url, job_id))
        return answers[-1].get("state") in FINAL

    wait_for(ended, 60, message="the job to end")
    assert answers[-1]["state"] == "SUCCESS", answers[-1]


def test_a_web_process_cut_off_from_the_message_queue_replays_what_its_rooms_missed(processes):
    # Redis drops a pub/sub subscriber that lags (client-output-buffer-limit): do that to the web's
    # listener mid-job. The client stays connected and never asks for a replay itself.
    import redis

    stack = start_stack(processes)
    job_id = submit(stack.web.url, steps=100, interval=0.05)["job_id"]
    watcher = Watcher(stack.web.url).connect()
    try:
        ack = watcher.subscribe(job_id)
        assert ack["ok"]
        wait_for(lambda: len(watcher.seqs(job_id)) >= 3, 30, message="live events")
        admin = redis.Redis(port=stack.redis_port)
        assert admin.client_kill_filter(_type="pubsub") >= 1
        final = watcher.wait_finished(job_id, 60)
        assert final["state"] == "SUCCESS"
        kept = in_seq_order(watcher.job_events(job_id))
        assert kept == list(range(ack["job"]["seq"] + 1, final["seq"] + 1)), kept
        assert [name for name, _ in watcher.events].count("connect") == 1
    finally:
        watcher.close()


def test_two_web_processes_relay_every_job_and_declare_a_lost_job_once(processes):
    # Two web processes on one Redis: each relays the worker's events to its own clients, and
    # when the worker dies only one of them (the holder of the stall-check lock) declares it LOST.
    stack = start_stack(processes, JOB_STALL_TIMEOUT=3)
    other = processes.web(stack.env)
    job_id = submit(other.url, steps=100, interval=0.1)["job_id"]
    watchers = [Watcher(stack.web.url).connect(), Watcher(other.url).connect()]
    try:
        for watcher in watchers:
            assert watcher.subscribe(job_id, last_seq=-1)["ok"]
        wait_for(lambda: all(len(w.seqs(job_id)) >= 4 for w in watchers), 30,
                 message="both web processes to relay the job")
        stack.worker.kill()
        finals = [watcher.wait_finished(job_id, 30) for watcher in watchers]
        assert finals[0] == finals[1] and finals[0]["state"] == "LOST"
        for watcher in watchers:
            assert watcher.seqs(job_id) == list(range(finals[0]["seq"] + 1))
            assert len(watcher.finished(job_id)) == 1
        assert api_job(stack.web.url, job_id)["seq"] == finals[0]["seq"]  # nothing after LOST
        deciders = [web for web in (stack.web, other) if f"job {job_id} declared LOST" in web.output()]
        assert len(deciders) == 1
        for url in (stack.web.url, other.url):
            wait_for(lambda: metric(url, "notifier_rooms_open") == 0, 5, message="rooms closed")
    finally:
        for watcher in watchers:
            watcher.close()


# ---- a deployment past one box: skewed clocks, persistent Redis restarts, Celery's view, leaks -----

SKEWED_CLOCK = '''\
import time
_time, _time_ns = time.time, time.time_ns
time.time = lambda: _time() + {skew}
time.time_ns = lambda: _time_ns() + int({skew} * 1e9)
'''


def test_a_worker_whose_clock_is_a_minute_behind_is_not_declared_lost(processes, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SKEWED_CLOCK.format(skew=-60.0))
    stack = start_stack(processes, JOB_STALL_TIMEOUT=5,
                        worker_env={"PYTHONPATH": str(tmp_path)})
    job_id = submit(stack.web.url, steps=24, interval=0.5)["job_id"]
    with following(stack.web.url, job_id) as watcher:
        final = watcher.wait_finished(job_id, 60)
    assert final["state"] == "SUCCESS", final
    # The times users see come from Redis's clock, not from the worker's.
    assert abs(final["finished_at"] - time.time()) < 10, final


def test_a_running_job_survives_a_restart_of_a_persistent_redis(processes, tmp_path):
    stack = start_stack(processes, redis_options={"data_dir": str(tmp_path)})
    job_id = submit(stack.web.url, steps=40, interval=0.1)["job_id"]
    watcher = ReplayingWatcher(stack.web.url)
    watcher.connect()
    try:
        watcher.follow(job_id)
        wait_for(lambda: len(watcher.seqs(job_id)) >= 5, 30, message="the job to be under way")
        stack.redis.stop()  # a clean shutdown: the append-only file has every write
        processes.redis(stack.redis_port, data_dir=str(tmp_path))
        final = watcher.wait_finished(job_id, 90)
        assert final["state"] == "SUCCESS", final
        assert_gap_free(watcher.job_events(job_id), final["seq"])
    finally:
        watcher.close()


def test_a_failed_or_cancelled_job_is_not_a_success_in_celerys_own_log(processes):
    stack = start_stack(processes)
    failing = submit(stack.web.url, steps=3, interval=0, fail_at=2)["job_id"]
    running_job = submit(stack.web.url, steps=200, interval=0.05)
    running = running_job["job_id"]
    with following(stack.web.url, running) as watcher:
        cancel(stack.web.url, running_job).raise_for_status()
        assert watcher.wait_finished(running)["state"] == "REVOKED"
    wait_for(lambda: api_job(stack.web.url, failing)["state"] == "FAILURE", 30, message="the failure")
    wait_for(lambda: f"[{failing}] raised unexpected: StepFailed" in stack.worker.output(), 10,
             message="Celery to log the job's failure")
    wait_for(lambda: f"[{running}] ignored" in stack.worker.output(), 10,
             message="Celery to log the cancelled job as ignored (and send task-revoked)")
    log = stack.worker.output()
    assert f"[{failing}] succeeded" not in log and f"[{running}] succeeded" not in log


def test_with_the_heartbeat_switched_off_a_dead_workers_job_is_still_declared_lost(processes):
    stack = start_stack(processes, HEARTBEAT_INTERVAL=0, JOB_STALL_TIMEOUT=3)
    job_id = submit(stack.web.url, steps=100, interval=0.1)["job_id"]
    with following(stack.web.url, job_id) as watcher:
        stack.worker.kill()
        final = watcher.wait_finished(job_id, 30)
    assert final["state"] == "LOST" and "no sign of life" in final["error"]
    assert watcher.heartbeats() == []


def test_the_relay_keeps_nothing_for_rooms_and_clients_that_are_gone(processes):
    """1,000 jobs watched by clients that come and go: finished jobs, jobs left behind with an
    unsubscribe, and clients that disconnect while their room is open with a replay floor set."""
    from flask_socketio import SocketIO

    from notifier import events
    from notifier.store import JobStore, connect

    stack = start_stack(processes, worker=False)
    url = stack.web.url
    store = JobStore(connect(stack.redis_url))
    emitter = SocketIO(message_queue=stack.redis_url, async_mode="threading")

    def update(job_id, **changes):  # recorded and published as a worker's events are
        events.record(store, emitter, job_id, **changes)

    for _ in range(10):
        watchers = [Watcher(url).connect() for _ in range(5)]
        try:
            for n in range(100):
                watcher, job_id = watchers[n % 5], store.create("sleep", {})["job_id"]
                update(job_id, state="STARTED")
                if n % 3 == 0:  # followed to its end: finished, room closed
                    assert watcher.subscribe(job_id, last_seq=0)["ok"]
                    update(job_id, state="PROGRESS", current=1, total=2)
                    update(job_id, state="SUCCESS")
                elif n % 3 == 1:  # the client leaves; the job never ends
                    assert watcher.subscribe(job_id, last_seq=0)["ok"]
                    update(job_id, state="PROGRESS", current=1, total=2)
                    assert watcher.call("unsubscribe", {"job_id": job_id})["ok"]
                else:  # a floor stays until the client disconnects, room still open
                    update(job_id, state="PROGRESS", current=1, total=2)
                    assert watcher.subscribe(job_id, last_seq=0)["ok"]
            assert metric(url, "notifier_relay_tracked") > 0  # the open rooms of this round
        finally:
            for watcher in watchers:
                watcher.close()
        wait_for(lambda: metric(url, "notifier_relay_tracked") == 0, 10,
                 message="the relay to forget the rooms and clients that are gone")
    assert metric(url, "notifier_rooms_open") == 0
