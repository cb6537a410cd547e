"""Socket.IO event names, and "write to the store, then publish": the one way a job event is made.

A job's ``seq`` grows by exactly one per published event only if every change is both recorded
and published; ``record`` does both, so no caller can do one without the other.
"""

NAMESPACE = "/jobs"
PROGRESS = "progress"
FINISHED = "finished"
HEARTBEAT = "heartbeat"
ANNOUNCEMENT = "announcement"  # two arguments: title, body (see notifier.announce)


def event_for(snapshot):
    """The event that carries this snapshot: ``finished`` for a final state, else ``progress``."""
    return PROGRESS if snapshot["finished_at"] is None else FINISHED


def publish(socketio, snapshot):
    """Send a snapshot to its job's room; after the final one, close the room.

    ``socketio`` is a Flask-SocketIO object: the web process's own, or a worker's write-only one.
    """
    job_id = snapshot["job_id"]
    socketio.emit(event_for(snapshot), snapshot, to=job_id, namespace=NAMESPACE)
    if snapshot["finished_at"] is not None:
        socketio.close_room(job_id, namespace=NAMESPACE)


def record(store, emitter, job_id, **changes):
    """Apply ``changes`` to a job as one new event and publish it; returns the new snapshot.

    ``emitter`` is a Flask-SocketIO object (or a function that returns one): a worker's write-only
    ``SocketIO(message_queue=...)``, or the web process's own. Raises what ``JobStore.update``
    raises, before anything is published.
    """
    return _published(emitter, store.update(job_id, **changes))


def cancel(store, emitter, job_id, **changes):
    """Ask a job to stop: one that has not started is revoked at once with ``changes`` and
    published (its snapshot is returned); a running one is flagged and stops at its next step
    (None is returned). Raises what ``JobStore.cancel`` raises."""
    return _published(emitter, store.cancel(job_id, **changes))


def _published(emitter, snapshot):
    if snapshot is not None:
        publish(emitter if hasattr(emitter, "emit") else emitter(), snapshot)
    return snapshot
