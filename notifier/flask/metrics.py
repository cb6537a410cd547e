"""What one app's notifier counts in this process: clients, open job rooms, relayed events.

Plain numbers, read from the relay itself so they cannot drift; an app exports them however it
likes (the standalone app serves them as Prometheus text at ``/metrics``).
"""

from notifier.events import NAMESPACE


def clients_connected(relay):
    """Socket.IO clients connected to /jobs on this process."""
    return len(relay.rooms.get(NAMESPACE, {}).get(None, ()))


def rooms_open(relay):
    """Job rooms with at least one client on this process."""
    return len(relay.job_rooms())


def snapshot(relay):
    """Every number at once: ``{"clients_connected", "rooms_open", "relay_tracked", "events_relayed",
    "slow_clients_dropped"}``."""
    return {"clients_connected": clients_connected(relay), "rooms_open": rooms_open(relay),
            "relay_tracked": relay.tracked(), "events_relayed": dict(relay.relayed),
            "slow_clients_dropped": relay.dropped}
