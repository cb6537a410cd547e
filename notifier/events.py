"""Socket.IO event names and the one way a job snapshot is published to its room."""

from .store import FINAL_STATES

NAMESPACE = "/jobs"
PROGRESS = "progress"
FINISHED = "finished"
HEARTBEAT = "heartbeat"
ANNOUNCEMENT = "announcement"  # two arguments: title, body (see notifier.announce)


def event_for(snapshot):
    """The event that carries this snapshot: ``finished`` for a final state, else ``progress``."""
    return FINISHED if snapshot["state"] in FINAL_STATES else PROGRESS


def publish(socketio, snapshot):
    """Send a snapshot to its job's room; after the final one, close the room.

    ``socketio`` is a Flask-SocketIO object: the web process's own, or a worker's write-only one.
    """
    job_id = snapshot["job_id"]
    socketio.emit(event_for(snapshot), snapshot, to=job_id, namespace=NAMESPACE)
    if snapshot["state"] in FINAL_STATES:
        socketio.close_room(job_id, namespace=NAMESPACE)
