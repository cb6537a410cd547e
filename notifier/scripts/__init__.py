"""The job store's Lua scripts: each ``NAME.lua`` here runs with ``prelude.lua`` in front of it."""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def _read(filename):
    with open(os.path.join(HERE, filename), encoding="utf-8") as f:
        return f.read()


def load(name, fields, config):
    """The text of script ``name``, with the snapshot's fields and the store's settings written
    into its prelude (so they need not be sent with every call)."""
    def lua(values):
        return ", ".join(json.dumps(value) for value in values)  # JSON literals are Lua literals here

    prelude = (_read("prelude.lua").replace("FIELDS_FROM_PYTHON", lua(fields))
               .replace("CONFIG_FROM_PYTHON", lua(config)))
    return prelude + _read(f"{name}.lua")
