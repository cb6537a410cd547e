"""The client's command line: its subcommands and each kind's options come from the server.

    python -m jobclient submit sleep --steps 20          # prints the job id and its URL
    python -m jobclient watch <job_id>                   # live bar and messages until it ends
    python -m jobclient watch <job_id> --json            # one snapshot per line, in seq order

The server is ``--url``, else ``$NOTIFIER_URL``, else http://127.0.0.1:5000. While watching, an
operator's announcement (``python -m notifier.announce``) is printed as a line of its own; with
``--json`` it goes to stderr as ``{"announcement": {"title": …, "body": …}}``, so stdout stays
one snapshot per line.
"""

import argparse
import json
import os
import sys

from . import api, tokens
from .api import CliError
from .watch import watch

DEFAULT_URL = "http://127.0.0.1:5000"
EXIT_ERROR = 2  # bad input, unknown job, server unreachable (argparse uses 2 as well)
EXIT_INTERRUPTED = 130


def _number(param):
    def parse(text):
        try:
            return int(text) if param["type"] == "int" else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{param['name']} must be a number") from None
    return parse


def _shown(number):
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def _kind_options(parser, kind):
    """One option per declared param, with the server's bounds, default and help."""
    for param in kind["params"]:
        bounds = f"{_shown(param['min'])}–{_shown(param['max'])}"
        if param["default"] is not None:
            bounds += f", default {_shown(param['default'])}"
        parser.add_argument(f"--{param['name'].replace('_', '-')}", dest=f"param_{param['name']}",
                            type=_number(param), metavar="N",
                            required=param["required"] and param["default"] is None,
                            help=f"{param['help']} ({bounds})")


def build_parser(kinds=()):
    """The whole command line; ``kinds`` (from ``GET /api/kinds``) become ``submit``'s subcommands."""
    parser = argparse.ArgumentParser(
        prog="python -m jobclient", description="Submit jobs to a notifier and watch them live.",
        epilog="watch exits 0 on SUCCESS, 1 on FAILURE, 3 on REVOKED, 4 on LOST, 2 on errors.")
    parser.add_argument("--url", default=os.environ.get("NOTIFIER_URL") or DEFAULT_URL,
                        help="the notifier's address (default: $NOTIFIER_URL or %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)

    submit_cmd = commands.add_parser("submit", help="start a job and print its id and URL")
    kind_cmds = submit_cmd.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in kinds:
        kind_cmd = kind_cmds.add_parser(kind["name"], help=kind["title"], description=kind["help"])
        _kind_options(kind_cmd, kind)
        _watch_options(kind_cmd, after_submit=True)

    watch_cmd = commands.add_parser("watch", help="follow a job until it ends")
    watch_cmd.add_argument("job_id")
    _watch_options(watch_cmd)

    cancel_cmd = commands.add_parser("cancel", help="stop a job this user submitted")
    cancel_cmd.add_argument("job_id")
    cancel_cmd.add_argument("--token", help="the job's cancel token (default: the one its submit "
                                            f"kept in {tokens.path()}); - reads it from standard "
                                            "input, out of sight of other users' process lists")
    cancel_cmd.add_argument("--json", action="store_true", help="print the job's snapshot as JSON")
    return parser


def _watch_options(parser, after_submit=False):
    if after_submit:
        parser.add_argument("--watch", action="store_true", help="then follow it until it ends")
    parser.add_argument("--json", action="store_true", help="print snapshots as JSON, one per line")
    parser.add_argument("--transport", choices=("websocket", "polling"),
                        help="use only this Socket.IO transport (default: polling, then upgrade)")


def _parse(argv):
    """Parse the command line, asking the server for its kinds only when submitting."""
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--url", default=os.environ.get("NOTIFIER_URL") or DEFAULT_URL)
    known, rest = server.parse_known_args(argv)
    kinds = api.kinds(known.url.rstrip("/")) if rest[:1] == ["submit"] else ()
    return build_parser(kinds).parse_args(argv)


def _submit(url, args):
    params = {name[len("param_"):]: value for name, value in vars(args).items()
              if name.startswith("param_") and value is not None}
    snapshot = api.submit(url, args.kind, params)
    _keep_token(snapshot["job_id"], snapshot.pop("cancel_token", None))
    if args.json:
        if not args.watch:  # when watching, the stream starts with this same snapshot
            print(json.dumps(snapshot, separators=(",", ":")), flush=True)
    else:
        print(snapshot["job_id"])
        print(f"{url}/jobs/{snapshot['job_id']}", flush=True)
    return snapshot["job_id"]


def _keep_token(job_id, token):
    if token is None:
        return
    try:
        tokens.save(job_id, token)
    except OSError as exc:  # the job runs anyway: say how to cancel it, this once
        print(f"warning: could not keep the cancel token ({exc}); to cancel this job later: "
              f"echo {token} | python -m jobclient cancel {job_id} --token -", file=sys.stderr)


def _cancel(url, args):
    token = sys.stdin.readline().strip() if args.token == "-" else args.token
    snapshot = api.cancel(url, args.job_id, token or tokens.load(args.job_id))
    if args.json:
        print(json.dumps(snapshot, separators=(",", ":")), flush=True)
    elif snapshot["state"] == "REVOKED":
        print("REVOKED: it had not started")
    else:
        print(f"cancel requested: the job ({snapshot['state']}) stops at its next step")
    return 0


def main(argv=None):
    try:
        args = _parse(argv)
        url = args.url.rstrip("/")
        if args.command == "cancel":
            return _cancel(url, args)
        transports = [args.transport] if args.transport else None
        if args.command == "submit":
            job_id = _submit(url, args)
            if not args.watch:
                return 0
        else:
            job_id = args.job_id
        return watch(url, job_id, as_json=args.json, transports=transports)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
