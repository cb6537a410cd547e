"""The terminal client's follower, fed in the orders python-socketio's client can deliver in.

Its client runs each incoming packet on a thread of its own, so the ``subscribe`` ack can arrive
before the replayed events the server sent ahead of it. These tests put that order (and the
others) in the follower's inbox directly, so the race happens every time; the network is left
out, and ``subscribe`` is recorded instead of sent (a stand-in, named as such).
"""

import pytest

from jobclient.api import CliError
from jobclient.follower import Follower

JOB = "6f1d3b4e-8a1c-4a5e-9d3f-2b7c1e0a9f11"


class RecordingFollower(Follower):
    """A Follower whose subscribe calls are recorded rather than sent."""

    def __init__(self, answers=()):
        super().__init__("http://127.0.0.1:9", JOB)
        self.subscribed = []
        self.answers = list(answers)  # what the server answers to each subscribe after the first

    def subscribe(self):
        self.subscribed.append(self.next_seq - 1)
        if len(self.subscribed) > 1 and self.answers:
            for arrival in self.answers.pop(0):
                self.inbox.put(arrival)


def snapshot(seq, state="PROGRESS"):
    return {"job_id": JOB, "seq": seq, "state": state}


def follow(follower, *arrivals):
    for arrival in arrivals:
        follower.inbox.put(arrival)
    return [s["seq"] for s in follower.snapshots()]


def test_an_ack_that_overtakes_the_replay_does_not_skip_the_replayed_seqs():
    follower = RecordingFollower()
    seqs = follow(follower, ("connect", None),
                  ("ack", {"ok": True, "job": snapshot(5), "history_from": 0}),
                  *[("snapshot", snapshot(seq)) for seq in (1, 0, 3, 2, 4)],
                  ("snapshot", snapshot(6, "SUCCESS")))
    assert seqs == [0, 1, 2, 3, 4, 5, 6]
    assert follower.subscribed == [-1]


def test_seqs_older_than_the_servers_history_are_skipped_and_the_rest_waited_for():
    follower = RecordingFollower()
    seqs = follow(follower, ("connect", None),
                  ("ack", {"ok": True, "job": snapshot(1500), "history_from": 1200}),
                  *[("snapshot", snapshot(seq)) for seq in range(1499, 1199, -1)],
                  ("snapshot", snapshot(1501, "SUCCESS")))
    assert seqs == list(range(1200, 1502))


def test_an_unavailable_answer_is_retried_not_fatal():
    answered = [("ack", {"ok": True, "job": snapshot(2, "SUCCESS"), "history_from": 0}),
                ("snapshot", snapshot(0)), ("snapshot", snapshot(1))]
    follower = RecordingFollower(answers=[answered])
    unavailable = {"ok": False, "error": {"code": "unavailable", "message": "try again shortly"}}
    seqs = follow(follower, ("connect", None), ("ack", unavailable))
    assert seqs == [0, 1, 2]
    assert follower.subscribed == [-1, -1]  # the retry came from its timer


def test_an_unknown_job_is_an_error():
    follower = RecordingFollower()
    follower.inbox.put(("ack", {"ok": False, "error": {"code": "not_found", "message": "no job"}}))
    with pytest.raises(CliError, match="no job"):
        list(follower.snapshots())


def follow_within(follower, deadline=10):
    """``follow`` on a thread, given ``deadline`` seconds; the seqs it yielded and whether it ended."""
    import threading

    seqs = []

    def run():
        seqs.extend(s["seq"] for s in follower.snapshots())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(deadline)
    return seqs, not thread.is_alive()


def test_a_seq_that_never_arrives_is_asked_for_again_once_the_gap_times_out():
    refilled = [("ack", {"ok": True, "job": snapshot(5, "SUCCESS"), "history_from": 2}),
                *[("snapshot", snapshot(seq)) for seq in (2, 3, 4)]]
    follower = RecordingFollower(answers=[refilled])
    follower.gap_timeout = 0.2  # seconds
    for arrival in [("connect", None), ("ack", {"ok": True, "job": snapshot(1), "history_from": 0}),
                    ("snapshot", snapshot(0)), ("snapshot", snapshot(3)), ("snapshot", snapshot(4))]:
        follower.inbox.put(arrival)  # seq 2 was published, and lost on its way
    seqs, ended = follow_within(follower)
    assert ended and seqs == [0, 1, 2, 3, 4, 5]
    assert follower.subscribed == [-1, 1]  # again from the last seq it had without a gap


def test_a_rate_limited_answer_is_retried_after_the_time_it_names():
    answered = [("ack", {"ok": True, "job": snapshot(1, "SUCCESS"), "history_from": 0}),
                ("snapshot", snapshot(0))]
    follower = RecordingFollower(answers=[answered])
    limited = {"ok": False, "error": {"code": "rate_limited", "message": "later", "retry_after": 0.1}}
    follower.inbox.put(("connect", None))
    follower.inbox.put(("ack", limited))
    seqs, ended = follow_within(follower)
    assert ended and seqs == [0, 1]
    assert follower.subscribed == [-1, -1]


def test_after_a_reconnect_it_subscribes_again_from_the_last_seq_it_has():
    """The real ``subscribe``; what it would send is recorded instead (a stand-in for the network)."""
    follower = Follower("http://127.0.0.1:9", JOB)
    sent = []
    follower.sio.emit = lambda event, data, namespace, callback: sent.append((event, data))
    seqs = follow(follower, ("connect", None),
                  ("ack", {"ok": True, "job": snapshot(1), "history_from": 0}),
                  *[("snapshot", snapshot(seq)) for seq in (0, 2, 3)],
                  ("disconnect", None), ("connect", None),
                  ("ack", {"ok": True, "job": snapshot(4, "SUCCESS"), "history_from": 4}))
    assert seqs == [0, 1, 2, 3, 4]
    assert sent == [("subscribe", {"job_id": JOB, "last_seq": -1}),
                    ("subscribe", {"job_id": JOB, "last_seq": 3})]
