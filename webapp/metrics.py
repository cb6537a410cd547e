"""Prometheus metrics of this web process, served at ``/metrics``: the notifier's own numbers
(``notifier.flask.metrics``) and the jobs this app submitted."""

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from notifier.events import FINISHED, PROGRESS
from notifier.flask import metrics


class NotifierCollector:
    """The notifier's numbers for one app, read when scraped, so they cannot drift."""

    def __init__(self, relay):
        self.relay = relay

    def collect(self):
        numbers = metrics.snapshot(self.relay)
        yield GaugeMetricFamily("notifier_clients_connected",
                                "Socket.IO clients connected to /jobs on this process.",
                                value=numbers["clients_connected"])
        yield GaugeMetricFamily("notifier_rooms_open",
                                "Job rooms with at least one client on this process.",
                                value=numbers["rooms_open"])
        yield GaugeMetricFamily("notifier_relay_tracked",
                                "Rooms and clients the relay keeps ordering state for on this process.",
                                value=numbers["relay_tracked"])
        relayed = CounterMetricFamily("notifier_events_relayed",
                                      "Job events this process passed on to its rooms.", labels=["event"])
        for event in (PROGRESS, FINISHED):
            relayed.add_metric([event], numbers["events_relayed"].get(event, 0))
        yield relayed
        yield CounterMetricFamily("notifier_slow_clients_dropped",
                                  "Clients this process disconnected for leaving too many events unread.",
                                  value=numbers["slow_clients_dropped"])


def init_app(app, kinds):
    """A registry of this app's own, with every series there from the start, at zero."""
    registry = CollectorRegistry()
    submitted = Counter("notifier_jobs_submitted", "Jobs accepted and enqueued by this process.",
                        ["kind"], registry=registry)
    for kind in kinds:
        submitted.labels(kind=kind)
    registry.register(NotifierCollector(app.extensions["notifier"].relay))
    app.extensions["webapp.metrics"] = submitted

    @app.get("/metrics")
    def metrics_page():
        """Prometheus text, for whoever watches this process."""
        return generate_latest(registry), 200, {"Content-Type": CONTENT_TYPE_LATEST}


def count_submitted(app, kind):
    """One more job of ``kind`` accepted by this app."""
    app.extensions["webapp.metrics"].labels(kind=kind).inc()
