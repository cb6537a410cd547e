"""python -m bench: every scenario for every contender, on 127.0.0.1, bounded in time.

    python -m bench                        # full run (well under 15 minutes)
    python -m bench --quick                # shorter rounds, smaller idle counts (under 3 minutes)
    python -m bench --only node_socketio,notifier_eventlet --scenario single_hop,fanout
    python -m bench --quick --json /tmp/bench.json --png /tmp/bench.png

Prints a markdown table (with ratios to node_socketio and redis_floor), writes the raw figures as
JSON (--json) and a PNG (--png). Every process it starts (private redis-servers, web processes,
node, publishers, watchers) is stopped at the end, on error and on Ctrl-C. Logs go to --log-dir.
"""

import argparse
import os
import platform
import signal
import sys
import tempfile
import time
import traceback

from . import contenders, procs, report, scenarios
from .rig import Rig

KEYS = {
    "idle": ("kb_per_idle_watcher", "event_p50_ms_at_10k_watchers"),
    "single_hop": ("single_hop_p99_ms",),
    "fanout": ("fanout_max_deliveries_per_s",),
    "flood": ("flood_staleness_p99_ms",),
}
ORDER = ("idle", "single_hop", "fanout", "flood")  # idle first: memory from a fresh server
ALL_SCENARIOS = (*ORDER, "submit")


def _names(text, allowed, what):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise SystemExit(f"unknown {what}: {', '.join(unknown)} (choose from {', '.join(allowed)})")
    return names


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short rounds, small idle counts")
    parser.add_argument("--only", default=",".join(contenders.CONTENDERS),
                        help="contenders, comma-separated (default: all)")
    parser.add_argument("--scenario", default=",".join(ALL_SCENARIOS),
                        help="scenarios, comma-separated (default: all)")
    parser.add_argument("--json", metavar="FILE", help="write the raw figures here")
    parser.add_argument("--png", metavar="FILE", default=os.path.join("bench", "results.png"),
                        help="draw the charts here (default: bench/results.png; '' for none)")
    parser.add_argument("--log-dir", help="process logs (default: a new temporary directory)")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy the Python server and a publisher during the fan-out, into DIR")
    args = parser.parse_args(argv)
    args.only = _names(args.only, contenders.CONTENDERS, "contender")
    args.scenario = _names(args.scenario, ALL_SCENARIOS, "scenario")
    return args


def say(message):
    print(f"bench [{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_contender(name, wanted, profile, log_dir, deadline, profile_dir=None):
    """Every wanted scenario on one contender; figures and the reasons for any null."""
    figures = {key: None for scenario in ORDER for key in KEYS[scenario]}
    notes = {}
    contender = contenders.make(name, log_dir, profile.heartbeat_interval)
    rig = None
    try:
        contender.start()
        rig = Rig(contender, log_dir)
        rig.profile_dir = profile_dir
        ran_idle = False
        for scenario in (s for s in ORDER if s in wanted):
            if time.monotonic() > deadline:
                notes.update(dict.fromkeys(KEYS[scenario], "skipped: the run's time budget ran out"))
                continue
            if ran_idle:
                contender.restart_server()  # a clean server after 10k sockets came and went
                ran_idle = False
            started = time.monotonic()
            try:
                got, why = scenarios.SCENARIOS[scenario](rig, profile)
                figures.update(got)
                notes.update(why)
            except Exception as exc:
                traceback.print_exc()
                notes.update(dict.fromkeys(KEYS[scenario], f"failed: {type(exc).__name__}: {exc}"))
                try:
                    rig.close_watchers()
                except Exception:
                    pass
            ran_idle = scenario == "idle"
            shown = ", ".join(f"{k}={figures.get(k)}" for k in KEYS[scenario])
            say(f"{name} {scenario}: {shown} ({time.monotonic() - started:.0f} s)")
    except Exception as exc:
        traceback.print_exc()
        for key in figures:
            notes.setdefault(key, f"contender did not start: {type(exc).__name__}: {exc}")
    finally:
        if rig is not None:
            rig.stop()
        contender.stop()
    figures["notes"] = notes
    return figures


def run_submit(profile, log_dir):
    contender = contenders.make("notifier_eventlet", log_dir, profile.heartbeat_interval)
    try:
        contender.start()
        return scenarios.submit(contender, profile)
    except Exception as exc:
        traceback.print_exc()
        return {"rps": None, "p99_ms": None, "notes": {"submit": f"failed: {type(exc).__name__}: {exc}"}}
    finally:
        contender.stop()


def main(argv=None):
    args = parse_args(argv)
    profile = scenarios.Profile.pick(args.quick)
    budget = 175 if args.quick else 840
    deadline = time.monotonic() + budget - 20  # leave room for the last scenario and the report
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="bench-")
    os.makedirs(log_dir, exist_ok=True)
    procs.raise_open_files_limit()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    say(f"{'quick' if args.quick else 'full'} run; process logs in {log_dir}")
    results = {"contenders": {}, "submit": None, "meta": {
        "quick": args.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "python": platform.python_version(), "cpus": os.cpu_count(), "profile": vars(profile),
        "loadavg_before": os.getloadavg()}}
    started = time.monotonic()
    try:
        if "node_socketio" in args.only:
            contenders.ensure_node_modules()
        wanted = [s for s in args.scenario if s in ORDER]
        if wanted:
            for name in args.only:
                results["contenders"][name] = run_contender(name, wanted, profile, log_dir, deadline,
                                                              args.profile)
        if "submit" in args.scenario:
            results["submit"] = run_submit(profile, log_dir)
            say(f"submit: {results['submit'].get('rps')} req/s, p99 {results['submit'].get('p99_ms')} ms")
    except KeyboardInterrupt:
        say("interrupted: stopping every process")
        return 130
    finally:
        procs.stop_all()
    results["meta"].update(seconds=round(time.monotonic() - started, 1), loadavg_after=os.getloadavg())
    if results["submit"] is None:
        results["submit"] = {"rps": None, "p99_ms": None, "notes": {"submit": "not run (--scenario)"}}
    print()
    print(report.markdown(results))
    if args.json:
        report.write_json(results, args.json)
        say(f"figures written to {args.json}")
    if args.png:
        report.draw_png(results, args.png)
        say(f"charts drawn in {args.png}")
    say(f"done in {results['meta']['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
