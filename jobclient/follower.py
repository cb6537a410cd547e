"""Following one job over Socket.IO: each snapshot once, in ``seq`` order, across reconnects.

python-socketio's client runs every incoming packet on a thread of its own, so the ``subscribe``
ack can overtake the replayed events the server sent before it. The follower therefore never
skips a seq because of the ack alone: the ack says where the server's replay started
(``history_from``), seqs below that are gone from the server's history and are skipped, and every
seq from there on is waited for. After every (re)connect it subscribes again with the last seq it
has; an ``unavailable`` or ``rate_limited`` answer is retried after a while. A gap that lasts
``GAP_TIMEOUT`` seconds (an event lost on its way) is filled by subscribing again from the last
seq it has without one.
"""

import queue
import threading
import time

import socketio

from .api import CliError

NAMESPACE = "/jobs"
FINAL_STATES = ("SUCCESS", "FAILURE", "REVOKED", "LOST")
RETRY_AFTER = 1.0  # seconds before subscribing again after an `unavailable` answer
GAP_TIMEOUT = 10.0  # seconds a missing seq is waited for while later ones are here


class Follower:
    """Follows one job and hands its snapshots over in ``seq`` order, each once.

    The client's handlers only put what arrives on a queue; the caller's thread, in
    ``snapshots()``, does all the ordering and printing.
    """

    def __init__(self, url, job_id, transports=None):
        self.url, self.job_id, self.transports = url, job_id, transports
        self.inbox = queue.Queue()
        self.next_seq = 0  # the seq we still wait for
        self.early = {}  # seq -> snapshot that arrived before an earlier seq
        self.gap_timeout = GAP_TIMEOUT
        self.gap_since = None  # when the current gap was noticed (or last asked to be filled)
        self.sio = socketio.Client(reconnection_delay=0.5, reconnection_delay_max=3)
        self.sio.on("connect", lambda: self.inbox.put(("connect", None)), namespace=NAMESPACE)
        self.sio.on("disconnect", lambda *reason: self.inbox.put(("disconnect", None)),
                    namespace=NAMESPACE)
        for event in ("progress", "finished"):
            self.sio.on(event, self._received, namespace=NAMESPACE)
        self.sio.on("announcement", self._announced, namespace=NAMESPACE)

    def _received(self, snapshot):
        if isinstance(snapshot, dict) and snapshot.get("job_id") == self.job_id:
            self.inbox.put(("snapshot", snapshot))

    def _announced(self, title="", body="", *_):
        self.inbox.put(("announcement", (str(title), str(body))))

    def connect(self):
        try:
            self.sio.connect(self.url, namespaces=[NAMESPACE], transports=self.transports,
                             wait_timeout=15)
        except socketio.exceptions.ConnectionError as exc:
            raise CliError(f"cannot connect to {self.url}: {exc}") from None

    def subscribe(self):
        """Ask for the job from the seq after the last one we have; the ack lands in the inbox."""
        payload = {"job_id": self.job_id, "last_seq": self.next_seq - 1}
        self.sio.emit("subscribe", payload, namespace=NAMESPACE,
                      callback=lambda ack=None: self.inbox.put(("ack", ack)))

    def _in_order(self, snapshot):
        """The snapshots now due, oldest first."""
        if snapshot["seq"] >= self.next_seq:
            self.early[snapshot["seq"]] = snapshot
        due = []
        while self.next_seq in self.early:
            due.append(self.early.pop(self.next_seq))
            self.next_seq += 1
        if not self.early:
            self.gap_since = None
        elif self.gap_since is None:
            self.gap_since = time.monotonic()
        return due

    def _wait(self):
        """Seconds to wait for the next arrival: until the current gap times out, at most 1."""
        if self.gap_since is None:
            return 1.0
        return max(0.0, min(1.0, self.gap_since + self.gap_timeout - time.monotonic()))

    def _gap_timed_out(self):
        return self.gap_since is not None and time.monotonic() >= self.gap_since + self.gap_timeout

    def _acknowledged(self, ack):
        """What a subscribe answer makes due; raises CliError when the job cannot be followed."""
        if not isinstance(ack, dict) or not ack.get("ok"):
            error = ack.get("error") if isinstance(ack, dict) else None
            error = error if isinstance(error, dict) else {}
            if error.get("code") in ("unavailable", "rate_limited"):
                delay = error.get("retry_after")
                delay = delay if isinstance(delay, (int, float)) and 0 < delay < 3600 else RETRY_AFTER
                threading.Timer(delay, self.inbox.put, (("retry", None),)).start()
                return []
            raise CliError(error.get("message") or f"cannot follow job {self.job_id}")
        start = ack.get("history_from")
        if isinstance(start, int) and start > self.next_seq:
            self.next_seq = start  # older seqs are no longer in the server's history
            for seq in [seq for seq in self.early if seq < start]:
                del self.early[seq]
        return self._in_order(ack["job"])

    def snapshots(self, on_status=lambda text: None, on_announcement=lambda title, body: None):
        """Yield the job's snapshots in seq order until (and including) its final one."""
        while True:
            try:
                kind, data = self.inbox.get(timeout=self._wait())
            except queue.Empty:
                if self._gap_timed_out():  # a lost event: ask for everything after the gap again
                    on_status("filling a gap…")
                    self.gap_since = time.monotonic()
                    self.subscribe()
                continue
            if kind in ("connect", "retry"):
                on_status("connected" if kind == "connect" else "retrying…")
                self.subscribe()
                continue
            if kind == "disconnect":
                on_status("reconnecting…")
                continue
            if kind == "announcement":
                on_announcement(*data)
                continue
            for snapshot in self._acknowledged(data) if kind == "ack" else self._in_order(data):
                yield snapshot
                if snapshot["state"] in FINAL_STATES:
                    return

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:  # already gone: nothing to tidy
            pass
