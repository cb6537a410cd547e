"""The build step pyproject.toml cannot say: ship the socket.io browser client inside ``notifier``.

The client comes from npm at the version package-lock.json pins, and is never committed. Building
the package (``pip install .``, ``pip install -e .``, a wheel) copies
``node_modules/socket.io-client/dist/socket.io.min.js`` into ``notifier/flask/static/vendor/``
(running ``npm ci`` first when it is missing), so the installed package serves it itself and
nothing is fetched at run time.
"""

import os
import shutil
import subprocess

from setuptools import setup

ROOT = os.path.dirname(os.path.abspath(__file__))
CLIENT = os.path.join(ROOT, "node_modules", "socket.io-client", "dist", "socket.io.min.js")
VENDORED = os.path.join(ROOT, "notifier", "flask", "static", "vendor", "socket.io.min.js")


def vendor_socketio_client():
    """Copy the npm client into the package (an sdist already carries its copy)."""
    if not os.path.exists(CLIENT):
        if os.path.exists(VENDORED) and not os.path.exists(os.path.join(ROOT, "package-lock.json")):
            return
        if shutil.which("npm") is None:
            raise SystemExit("npm is needed to build the package: it brings the socket.io browser "
                             "client (apt-get install npm)")
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=ROOT,
                       check=True)
    os.makedirs(os.path.dirname(VENDORED), exist_ok=True)
    shutil.copyfile(CLIENT, VENDORED)


vendor_socketio_client()
setup()
