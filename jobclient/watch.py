"""Printing a followed job: a live bar with messages on a terminal, or one JSON line per snapshot."""

import json
import sys
import time

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

from .follower import Follower

# Exit statuses of `watch` (and `submit --watch`): 0 only when the job succeeded.
EXIT_CODES = {"SUCCESS": 0, "FAILURE": 1, "REVOKED": 3, "LOST": 4}


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
    def announced(title, body):  # stdout stays one snapshot per line
        print(json.dumps({"announcement": {"title": title, "body": body}}), file=sys.stderr,
              flush=True)

    final = None
    for snapshot in follower.snapshots(on_announcement=announced):
        print(json.dumps(snapshot, separators=(",", ":")), flush=True)
        final = snapshot
    return EXIT_CODES[final["state"]]


def _describe(value):
    if isinstance(value, dict):
        return ", ".join(f"{k}={json.dumps(v)}" for k, v in value.items())
    return json.dumps(value)


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
    if state == "SUCCESS":
        console.print(f"SUCCESS in {elapsed:.1f} s: {_describe(final['result'])}",
                      markup=False, highlight=False)
    else:
        console.print(f"{state} after {elapsed:.1f} s: {final['error'] or final['message']}",
                      markup=False, highlight=False, style="red")
    return EXIT_CODES[state]
