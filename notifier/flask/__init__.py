"""The web side of the notifier: the ``/jobs`` namespace, the relay, the background loops, and the
job page's templates and static files."""

from flask import Blueprint

blueprint = Blueprint("notifier", __name__, static_folder="static",
                      static_url_path="/notifier/static", template_folder="templates")
