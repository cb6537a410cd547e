"""Prometheus metrics of this web process, served at ``/metrics``."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

from notifier.events import FINISHED, NAMESPACE, PROGRESS

REGISTRY = CollectorRegistry()
JOBS_SUBMITTED = Counter("notifier_jobs_submitted", "Jobs accepted and enqueued by this process.",
                         ["kind"], registry=REGISTRY)
EVENTS_RELAYED = Counter("notifier_events_relayed", "Job events this process passed on to its rooms.",
                         ["event"], registry=REGISTRY)
CLIENTS_CONNECTED = Gauge("notifier_clients_connected",
                          "Socket.IO clients connected to /jobs on this process.", registry=REGISTRY)
ROOMS_OPEN = Gauge("notifier_rooms_open", "Job rooms with at least one client on this process.",
                   registry=REGISTRY)
RELAY_TRACKED = Gauge("notifier_relay_tracked",
                      "Rooms and clients the relay keeps ordering state for on this process.",
                      registry=REGISTRY)


def init_app(app, manager, kinds):
    """Read the connection gauges from the Socket.IO manager itself, so they cannot drift."""
    for kind in kinds:  # every series exists from the start, at zero
        JOBS_SUBMITTED.labels(kind=kind)
    for event in (PROGRESS, FINISHED):
        EVENTS_RELAYED.labels(event=event)
    CLIENTS_CONNECTED.set_function(lambda: len(manager.rooms.get(NAMESPACE, {}).get(None, ())))
    ROOMS_OPEN.set_function(lambda: len(manager.job_rooms()))
    RELAY_TRACKED.set_function(manager.tracked)

    @app.get("/metrics")
    def metrics():
        """Prometheus text, for whoever watches this process."""
        return generate_latest(REGISTRY), 200, {"Content-Type": CONTENT_TYPE_LATEST}
