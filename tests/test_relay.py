"""The relay overrides python-socketio internals: fail loudly if one of them changes shape."""

import inspect

import pytest
import socketio as python_socketio

from webapp import listeners, relay

BASES = {"redis": python_socketio.RedisManager, "kombu": python_socketio.KombuManager}


@pytest.mark.parametrize("transport, name", [
    *[(transport, name) for transport in BASES for name in relay.OVERRIDDEN],
    *[(transport, name) for transport, names in listeners.OVERRIDDEN.items() for name in names],
])
def test_every_overridden_internal_still_exists_with_the_same_signature(transport, name):
    ours = {"redis": listeners.ResyncingRedisManager, "kombu": listeners.ResyncingKombuManager}[transport]
    base = getattr(BASES[transport], name, None)
    assert base is not None, f"python-socketio's {BASES[transport].__name__} has no {name} any more"
    assert getattr(ours, name) is not base, f"{ours.__name__}.{name} no longer overrides it"
    assert inspect.signature(getattr(ours, name)) == inspect.signature(base), \
        f"{name} changed shape in python-socketio: read the new one before pinning a newer release"


def test_the_overridden_names_are_all_the_methods_the_relay_redefines():
    redefined = {name for cls in (relay.OrderedRelay, listeners.ResyncingRedisManager,
                                  listeners.ResyncingKombuManager)
                 for name in vars(cls) if name.startswith(("_", "basic_")) and not name.startswith("__")
                 and any(hasattr(base, name) for base in BASES.values())}
    named = set(relay.OVERRIDDEN) | {n for names in listeners.OVERRIDDEN.values() for n in names}
    assert redefined == named
