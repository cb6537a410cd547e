"""Test helpers for clients: real python-socketio watchers that record what they receive, and
the HTTP calls the tests make (submit, cancel, read a job, read a metric)."""

import socket
import threading

import requests
import socketio
import websocket
from engineio import packet as engineio_packet
from socketio import packet as socketio_packet

from processes import NAMESPACE, wait_for


RECORDED = ("progress", "finished", "heartbeat")


class Watcher:
    """A real python-socketio client on /jobs that records every event it receives.

    Events are recorded in the order they came off the connection. python-socketio's client runs
    each packet's handlers on a thread of its own, so the order handlers run in is not the order
    the server sent; the tests check the server's order, so the recording is done where the
    engine.io client reads each packet (``_receive_packet``), before any thread is involved.
    """

    def __init__(self, url, transports=("websocket",), headers=None, **client_options):
        self.url, self.headers = url, headers or {}  # headers: e.g. a login's session cookie
        self.events = []  # (event name, data) in arrival order
        self.lock = threading.Lock()
        self.sio = socketio.Client(**client_options)
        receive = self.sio.eio._receive_packet

        def received(pkt):
            if pkt.packet_type == engineio_packet.MESSAGE and isinstance(pkt.data, str):
                self._record_packet(pkt.data)
            return receive(pkt)

        self.sio.eio._receive_packet = received
        self.sio.on("connect", self._recorder("connect"), namespace=NAMESPACE)
        self.transports = list(transports)

    def _record_packet(self, text):
        pkt = socketio_packet.Packet(encoded_packet=text)
        if pkt.packet_type == socketio_packet.EVENT and pkt.namespace == NAMESPACE and pkt.data \
                and pkt.data[0] in RECORDED:
            with self.lock:
                self.events.append((pkt.data[0], pkt.data[1] if len(pkt.data) > 1 else None))

    def _recorder(self, name):
        def record(data=None):
            with self.lock:
                self.events.append((name, data))
        return record

    def connect(self):
        self.sio.connect(self.url, namespaces=[NAMESPACE], transports=self.transports,
                         headers=self.headers, wait_timeout=10)
        return self

    def subscribe(self, job_id, last_seq=None, timeout=10):
        payload = {"job_id": job_id}
        if last_seq is not None:
            payload["last_seq"] = last_seq
        return self.sio.call("subscribe", payload, namespace=NAMESPACE, timeout=timeout)

    def call(self, event, data, timeout=10):
        return self.sio.call(event, data, namespace=NAMESPACE, timeout=timeout)

    def job_events(self, job_id):
        with self.lock:
            return [(name, data) for name, data in self.events
                    if name in ("progress", "finished") and data.get("job_id") == job_id]

    def seqs(self, job_id):
        """Every seq received for a job, in arrival order, duplicates included."""
        return [data["seq"] for _, data in self.job_events(job_id)]

    def unique_seqs(self, job_id):
        """The distinct seqs received, sorted: what a client that drops duplicates by seq keeps.

        A subscribe with ``last_seq`` replays history while live events already flow to the room,
        so an event may arrive twice (the contract lets clients drop duplicates by seq).
        """
        return sorted(set(self.seqs(job_id)))

    def seqs_after(self, job_id, seq):
        """The seqs received that are newer than ``seq`` (say, the one a subscribe ack carried).

        Subscribing joins the room before reading the snapshot, so the event that produced the
        ack's snapshot may also arrive live; what is newer must arrive once each, in order.
        """
        return [s for s in self.seqs(job_id) if s > seq]

    def finished(self, job_id):
        return [data for name, data in self.job_events(job_id) if name == "finished"]

    def wait_finished(self, job_id, timeout=30):
        return wait_for(lambda: self.finished(job_id), timeout, message=f"finished of {job_id}")[0]

    def heartbeats(self):
        with self.lock:
            return [data for name, data in self.events if name == "heartbeat"]

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:
            pass


def raw_websocket(url, receive_buffer=None, timeout=5):
    """A raw Engine.IO websocket (no Socket.IO client in the way), its open packet read; with
    ``receive_buffer``, its socket takes in at most about that many bytes unread."""
    options = [(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)] if receive_buffer else []
    ws = websocket.create_connection(url.replace("http", "ws") + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=timeout, sockopt=options)
    assert ws.recv().startswith("0{")
    return ws


def submit(url, kind="sleep", **params):
    response = requests.post(f"{url}/api/jobs", json={"kind": kind, "params": params}, timeout=10)
    assert response.status_code == 202, response.text
    return response.json()


def cancel(url, job, token=None):
    """Ask to stop a job ``submit`` returned, as its submitter: with its cancel token."""
    token = job["cancel_token"] if token is None else token
    return requests.post(f"{url}/api/jobs/{job['job_id']}/cancel",
                         headers={"Authorization": f"Bearer {token}"}, timeout=10)


def metric(url, name):
    """The value of one metric line (without labels) from /metrics."""
    for line in requests.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"metric {name} not found")


def kill_transport(watcher):
    """Cut a Watcher's websocket under it, as a network failure would (no Socket.IO goodbye)."""
    ws = watcher.sio.eio.ws
    ws.sock.shutdown(socket.SHUT_RDWR)


def in_seq_order(events):
    """What a client that keeps an event only if its seq is newer than the last one ends up with."""
    kept, last = [], -1
    for _, data in events:
        if data["seq"] > last:
            kept.append(data["seq"])
            last = data["seq"]
    return kept


class ReplayingWatcher(Watcher):
    """A Watcher that, like the pages' JavaScript, re-subscribes with ``last_seq`` after every
    (re)connect, so its reconnects rely on the server's replay."""

    def __init__(self, url, **client_options):
        super().__init__(url, **client_options)
        self.jobs = set()
        self.acks = []
        self.sio.on("connect", self._on_connect, namespace=NAMESPACE)

    def _on_connect(self):
        with self.lock:
            self.events.append(("connect", None))
        if self.jobs:  # acks arrive on the client's read loop: never wait for one inside a handler
            self.sio.start_background_task(self._resubscribe, list(self.jobs))

    def _resubscribe(self, job_ids):
        for job_id in job_ids:
            seqs = self.seqs(job_id)
            self.acks.append(self.subscribe(job_id, last_seq=max(seqs) if seqs else -1))

    def connections(self):
        with self.lock:
            return sum(1 for name, _ in self.events if name == "connect")

    def follow(self, job_id):
        """Subscribe from the very first event (seq 0) and keep following across reconnects."""
        self.jobs.add(job_id)
        ack = self.subscribe(job_id, last_seq=-1)
        self.acks.append(ack)
        return ack


def api_job(url, job_id):
    return requests.get(f"{url}/api/jobs/{job_id}", timeout=5).json()
