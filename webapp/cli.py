"""The terminal client: submit a job and watch it live over Socket.IO, like the job page does.

    python -m webapp.cli submit sleep --steps 20          # prints the job id and its URL
    python -m webapp.cli watch <job_id>                   # live bar and messages until it ends
    python -m webapp.cli watch <job_id> --json            # one snapshot per line, in seq order

While watching, an operator's announcement (``python -m notifier.announce``) is printed as a line
of its own; with ``--json`` it goes to stderr as ``{"announcement": {"title": …, "body": …}}``, so
stdout stays one snapshot per line.

The server is ``--url``, else ``$NOTIFIER_URL``, else http://127.0.0.1:5000. It talks only to the
public HTTP API and the ``/jobs`` namespace, so it works against any running notifier.
"""

import argparse
import json
import os
import queue
import sys
import time

import requests
import socketio
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from notifier.events import ANNOUNCEMENT, FINISHED, NAMESPACE, PROGRESS
from notifier.store import FAILURE, LOST, REVOKED, SUCCESS
from tasks import KINDS

DEFAULT_URL = "http://127.0.0.1:5000"
# Exit statuses of `watch` (and `submit --watch`): 0 only when the job succeeded.
EXIT_CODES = {SUCCESS: 0, FAILURE: 1, REVOKED: 3, LOST: 4}
EXIT_ERROR = 2  # bad input, unknown job, server unreachable (argparse uses 2 as well)
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A problem the user can act on; printed without a traceback."""


# ---- submit ---------------------------------------------------------------------------------------

def submit(url, kind, params):
    """POST the job to the API; returns its first snapshot or raises CliError with the server's words."""
    try:
        response = requests.post(f"{url}/api/jobs", json={"kind": kind, "params": params}, timeout=15)
    except requests.RequestException as exc:
        raise CliError(f"cannot reach {url}: {exc}") from None
    if response.status_code == 202:
        return response.json()
    try:
        error = response.json()["error"]
        message = error["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text.strip()[:200] or response.reason
    if response.status_code == 429:
        message += f" (retry after {response.headers.get('Retry-After', '?')} s)"
    raise CliError(f"job not submitted ({response.status_code}): {message}")


# ---- watch ----------------------------------------------------------------------------------------

class Follower:
    """Follows one job over Socket.IO and hands its snapshots over in ``seq`` order, each once.

    The client's handlers run on its own thread; they only put what arrives on a queue, and the
    caller's thread does all the printing. After every (re)connect it subscribes again with the
    last ``seq`` it has, so the server replays whatever was missed meanwhile.
    """

    def __init__(self, url, job_id, transports=None):
        self.url, self.job_id, self.transports = url, job_id, transports
        self.inbox = queue.Queue()
        self.next_seq = 0  # the seq we still wait for
        self.early = {}  # seq -> snapshot that arrived before an earlier seq
        self.sio = socketio.Client(reconnection_delay=0.5, reconnection_delay_max=3)
        self.sio.on("connect", lambda: self.inbox.put(("connect", None)), namespace=NAMESPACE)
        self.sio.on("disconnect", lambda *reason: self.inbox.put(("disconnect", None)),
                    namespace=NAMESPACE)
        for event in (PROGRESS, FINISHED):
            self.sio.on(event, self._received, namespace=NAMESPACE)
        self.sio.on(ANNOUNCEMENT, self._announced, namespace=NAMESPACE)

    def _received(self, snapshot):
        if isinstance(snapshot, dict) and snapshot.get("job_id") == self.job_id:
            self.inbox.put(("snapshot", snapshot))

    def _announced(self, title="", body="", *_):
        self.inbox.put(("announcement", (str(title), str(body))))

    def connect(self):
        try:
            self.sio.connect(self.url, namespaces=[NAMESPACE], transports=self.transports,
                             wait_timeout=15)
        except socketio.exceptions.ConnectionError as exc:
            raise CliError(f"cannot connect to {self.url}: {exc}") from None

    def _subscribe(self):
        payload = {"job_id": self.job_id, "last_seq": self.next_seq - 1}
        self.sio.emit("subscribe", payload, namespace=NAMESPACE,
                      callback=lambda ack=None: self.inbox.put(("ack", ack)))

    def _in_order(self, snapshot, *, settled=False):
        """Snapshots that are now due, oldest first. ``settled``: the server replayed all it had,
        so a seq still missing is gone from its history (a very long job): skip past it."""
        if snapshot["seq"] >= self.next_seq:
            self.early[snapshot["seq"]] = snapshot
        due = []
        while self.early:
            if self.next_seq not in self.early:
                if not settled:
                    break
                self.next_seq = min(self.early)
            due.append(self.early.pop(self.next_seq))
            self.next_seq += 1
        return due

    def snapshots(self, on_status=lambda text: None, on_announcement=lambda title, body: None):
        """Yield the job's snapshots in seq order until (and including) its final one."""
        while True:
            try:
                kind, data = self.inbox.get(timeout=1)
            except queue.Empty:
                continue
            if kind == "connect":
                on_status("connected")
                self._subscribe()
                continue
            if kind == "disconnect":
                on_status("reconnecting…")
                continue
            if kind == "announcement":
                on_announcement(*data)
                continue
            if kind == "ack":
                if not (isinstance(data, dict) and data.get("ok")):
                    error = (data or {}).get("error") or {}
                    raise CliError(error.get("message") or f"cannot follow job {self.job_id}")
                due = self._in_order(data["job"], settled=True)
            else:
                due = self._in_order(data)
            for snapshot in due:
                yield snapshot
                if snapshot["state"] in EXIT_CODES:
                    return

    def close(self):
        try:
            self.sio.disconnect()
        except Exception:  # already gone: nothing to tidy
            pass


def _describe(value):
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in value.items())
    return json.dumps(value)


def watch(url, job_id, *, as_json=False, transports=None, out=None):
    """Follow a job to its end, printing as it goes; returns the exit status for its final state."""
    follower = Follower(url, job_id, transports)
    follower.connect()
    try:
        if as_json:
            return _watch_json(follower)
        return _watch_live(follower, out or Console(highlight=False))
    finally:
        follower.close()


def _watch_json(follower):
    def announced(title, body):
        print(json.dumps({"announcement": {"title": title, "body": body}}), file=sys.stderr,
              flush=True)

    final = None
    for snapshot in follower.snapshots(on_announcement=announced):
        print(json.dumps(snapshot, separators=(",", ":")), flush=True)
        final = snapshot
    return EXIT_CODES[final["state"]]


def _watch_live(follower, console):
    columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
               MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
               TextColumn("[dim]{task.fields[status]}"))
    # On a terminal the bar stays at the bottom while the job runs, then gives way to the summary
    # line; in a pipe only the messages and the summary are printed.
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as bar:
        task = bar.add_task(follower.job_id[:8], total=None, status="connecting…")
        def announced(title, body):
            bar.console.print(f"announcement: {title}: {body}", markup=False, highlight=False,
                              style="bold")

        final = None
        for snapshot in follower.snapshots(lambda text: bar.update(task, status=text), announced):
            if snapshot["seq"] == 0 or bar.tasks[0].description == follower.job_id[:8]:
                bar.update(task, description=f"{snapshot['kind']} {follower.job_id[:8]}")
            bar.update(task, total=snapshot["total"], completed=snapshot["current"] or 0)
            bar.console.print(f"#{snapshot['seq']:<4} {snapshot['state']:<8} {snapshot['message'] or ''}",
                              markup=False, highlight=False)
            final = snapshot
    elapsed = (final["finished_at"] or time.time()) - final["created_at"]
    state = final["state"]
    if state == SUCCESS:
        console.print(f"SUCCESS in {elapsed:.1f} s: {_describe(final['result'])}",
                      markup=False, highlight=False)
    else:
        console.print(f"{state} after {elapsed:.1f} s: {final['error'] or final['message']}",
                      markup=False, highlight=False, style="red")
    return EXIT_CODES[state]


# ---- command line -----------------------------------------------------------------------------------

def _number(param):
    def parse(text):
        try:
            return int(text) if param.type is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{param.name} must be a number") from None
    return parse


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m webapp.cli", description="Submit jobs to the notifier and watch them live.",
        epilog="watch exits 0 on SUCCESS, 1 on FAILURE, 3 on REVOKED, 4 on LOST, 2 on errors.")
    parser.add_argument("--url", default=os.environ.get("NOTIFIER_URL") or DEFAULT_URL,
                        help="the notifier's address (default: $NOTIFIER_URL or %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)

    submit_cmd = commands.add_parser("submit", help="start a job and print its id and URL")
    kinds = submit_cmd.add_subparsers(dest="kind", required=True, metavar="KIND")
    for kind in KINDS.values():
        kind_cmd = kinds.add_parser(kind.name, help=kind.title, description=kind.description)
        for param in kind.params.values():
            bounds = f"{param.minimum:g}–{param.maximum:g}"
            if param.default is not None:
                bounds += f", default {param.default:g}"
            kind_cmd.add_argument(f"--{param.name.replace('_', '-')}", dest=f"param_{param.name}",
                                  type=_number(param), metavar="N",
                                  required=param.default is None and param.required,
                                  help=f"{param.help} ({bounds})")
        _add_watch_options(kind_cmd, after_submit=True)

    watch_cmd = commands.add_parser("watch", help="follow a job until it ends")
    watch_cmd.add_argument("job_id")
    _add_watch_options(watch_cmd)
    return parser


def _add_watch_options(parser, after_submit=False):
    if after_submit:
        parser.add_argument("--watch", action="store_true", help="then follow it until it ends")
    parser.add_argument("--json", action="store_true", help="print snapshots as JSON, one per line")
    parser.add_argument("--transport", choices=("websocket", "polling"),
                        help="use only this Socket.IO transport (default: polling, then upgrade)")


def main(argv=None):
    args = build_parser().parse_args(argv)
    url = args.url.rstrip("/")
    transports = [args.transport] if args.transport else None
    try:
        if args.command == "submit":
            params = {name[len("param_"):]: value for name, value in vars(args).items()
                      if name.startswith("param_") and value is not None}
            snapshot = submit(url, args.kind, params)
            if args.json:
                if not args.watch:  # when watching, the stream starts with this same snapshot
                    print(json.dumps(snapshot, separators=(",", ":")), flush=True)
            else:
                print(snapshot["job_id"])
                print(f"{url}/jobs/{snapshot['job_id']}", flush=True)
            if not args.watch:
                return 0
            job_id = snapshot["job_id"]
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
