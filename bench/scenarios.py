"""The scenarios. Each takes a Rig and a Profile and returns (figures, notes): a figure that could
not be measured is None and ``notes`` says why.

- single_hop: 1 watcher, 200 events/s: latency from the publisher's timestamp to arrival.
- fanout: 100 jobs x 10 watchers; the event rate doubles until < 99 % arrive within 2.5 s of the
  publisher stopping, or p99 >= 500 ms; the figure is the best sustained deliveries/s.
- flood: the same crowd, reporters called flat out: per value, time until every watcher of its job
  held it or newer (the notifier's reporters keep their default throttle: that is what it is for).
- idle: 1k, 5k, 10k subscribed websockets on one fresh server: memory each, heartbeat reach, and
  one event to each of 100 probe rooms (one watcher each) beside them.
- submit (not per contender): POST /api/jobs at concurrency 32 on one eventlet web process.
"""

import asyncio
import os
import time
from dataclasses import dataclass, field

import aiohttp

from . import procs
from .measure import freshness, summary

MAX_P99_MS = 500
MIN_DELIVERED = 0.99
DRAIN_SECONDS = 2.5


@dataclass
class Profile:
    quick: bool = False
    single_hop_rate: int = 200
    jobs: int = 100
    watchers_per_job: int = 10
    heartbeat_interval: float = 3.0
    single_hop_seconds: float = 10.0
    fanout_rates: list = field(default_factory=lambda: [100, 200, 400, 800, 1600, 3200, 6400])
    fanout_seconds: float = 5.0
    fanout_refine: int = 2  # steps between the last passing and the first failing rate
    probe_seconds: float = 2.0  # the idle scenario's one event per room goes out over this long
    flood_seconds: float = 5.0
    idle_counts: list = field(default_factory=lambda: [1000, 5000, 10000])
    submit_seconds: float = 8.0
    retry_failed_step: bool = True  # a neighbour's CPU burst should not end the ramp by itself
    settle_seconds: float = 20.0  # how long a flood's backlog may take to reach the watchers

    @classmethod
    def pick(cls, quick):
        if not quick:
            return cls()
        return cls(quick=True, heartbeat_interval=1.5, single_hop_seconds=3.0,
                   fanout_rates=[300, 1000, 2000, 4000], fanout_seconds=1.5, fanout_refine=0,
                   flood_seconds=2.0, idle_counts=[1000], probe_seconds=1.0, submit_seconds=3.0,
                   retry_failed_step=False, settle_seconds=10.0)


def _throttle(rig):
    """The min_interval a flood runs with: the product's default for the notifier, none elsewhere."""
    if not rig.contender.worker_path:
        return 0.0
    from notifier.settings import Settings

    return Settings().progress_min_interval


def single_hop(rig, profile):
    [job] = rig.create_jobs(1)
    joined = rig.connect([job])
    if not joined["connected"]:
        return {"single_hop_p99_ms": None}, {"single_hop_p99_ms": f"watcher failed: {joined['errors']}"}
    sent = rig.publish([job], profile.single_hop_rate, profile.single_hop_seconds, sample_every=0)
    if rig.pushes:
        rig.drain(sent.round, sent.sent, DRAIN_SECONDS)
        latencies = rig.collect().latencies_ms(sent.round)
    else:
        time.sleep(1.0)
        latencies = freshness(sent.samples, rig.collect(timelines=True).timelines)
    rig.close_watchers()
    figures = summary([x for x in latencies if x != float("inf")])
    notes = {}
    if not rig.pushes:
        notes["single_hop_p99_ms"] = "polling: time until the watcher held that value or a newer one"
    return {"single_hop_p99_ms": figures["p99_ms"], "single_hop": {
        **figures, "sent": sent.sent, "delivered": len(latencies),
        "rate": round(sent.sent / sent.elapsed, 1),
        "latencies_ms": sorted(latencies)}}, notes


def _crowd(rig, profile):
    """The fan-out crowd (jobs x watchers), connected once and kept for the flood."""
    if rig.crowd is None:
        jobs = rig.create_jobs(profile.jobs)
        wanted = [jobs[n % len(jobs)] for n in range(profile.jobs * profile.watchers_per_job)]
        joined = rig.connect(wanted, timeout=60)
        rig.crowd = (jobs, joined)
    return rig.crowd


def _too_many(rig, n):
    limit = rig.contender.max_websockets
    if limit is not None and n > limit:
        return f"needs {n} websockets: {rig.contender.limit_reason}"
    return None


def _crowd_or_reason(rig, profile, key):
    """The connected crowd of watchers, or (None, the reason there is none) for figure ``key``."""
    reason = _too_many(rig, profile.jobs * profile.watchers_per_job)
    if reason:
        return None, reason
    jobs, joined = _crowd(rig, profile)
    if joined["failed"]:
        return None, f"{joined['failed']} watchers failed to connect: {joined['errors']}"
    return (jobs, joined), None


def fanout(rig, profile):
    key = "fanout_max_deliveries_per_s"
    crowd, reason = _crowd_or_reason(rig, profile, key)
    if reason:
        return {key: None}, {key: reason}
    jobs, joined = crowd
    notes, steps, best, lost, duplicated = {}, [], None, 0, 0
    rig.publish(jobs, profile.fanout_rates[0], 0.5)  # warm-up: first connections, caches, JIT
    time.sleep(DRAIN_SECONDS if not rig.pushes else 0.5)
    rig.collect()
    profiler = _profiler(rig, "fanout")

    def run_step(rate):
        nonlocal lost, duplicated
        step = _fanout_step(rig, profile, jobs, rate)
        if not step["ok"] and profile.retry_failed_step:
            rig.quiet()
            failed, step = step, _fanout_step(rig, profile, jobs, rate)
            step["retried_after"] = failed
        lost += step["lost"] + step.get("retried_after", {}).get("lost", 0)
        duplicated += step["duplicated"] + step.get("retried_after", {}).get("duplicated", 0)
        steps.append(step)
        return step

    failed_at = None
    for rate in profile.fanout_rates:
        step = run_step(rate)
        if not step["ok"]:
            failed_at = rate
            break
        best = step
        if step["events_per_s"] < 0.9 * rate:
            notes[key] = (f"publisher-bound: the publishers reached {step['events_per_s']} "
                          f"of {rate} events/s asked")
            break
    else:
        notes[key] = f"every step passed; the ramp stops at {profile.fanout_rates[-1]} events/s"
    if best is not None and failed_at is not None:
        # the doubling ramp brackets the limit; halve the bracket a few times to place it
        low, high = best["target_events_per_s"], failed_at
        for _ in range(profile.fanout_refine):
            rate = (low + high) // 2
            step = run_step(rate)
            if step["ok"] and step["events_per_s"] >= 0.9 * rate:
                best, low = step, rate
            else:
                high = rate
    if best is None:
        notes.setdefault(key, f"the first step ({profile.fanout_rates[0]} events/s) already failed")
    profiled = profiler.stop() if profiler else None
    errors = _add_up(step.get("poll_errors", {}) for step in steps)
    if errors:
        notes["fanout_poll_errors"] = f"{errors} in {sum(s['polls'] for s in steps)} polls"

    return {key: best["deliveries_per_s"] if best else 0,
            "fanout": {"connect": joined, "steps": steps, "lost": lost, "duplicated": duplicated,
                       **({"profile": profiled} if profiled else {})}}, notes


def _profiler(rig, scenario):
    """py-spy on the Python processes of this contender, when --profile asked for it."""
    if not rig.profile_dir:
        return None
    from .profile import Profiler

    targets = []
    if rig.contender.worker_path:  # the notifier's web process is Python too
        targets.append(("server", rig.contender.server_pid))
    if "bench.publisher" in rig.contender.publisher_argv():
        targets.append(("publisher", rig.publishers[0].pid))
    out = os.path.join(rig.profile_dir, f"{rig.contender.name}-{scenario}")
    return Profiler(out, targets) if targets else None


def _add_up(counts):
    total = {}
    for each in counts:
        for what, n in each.items():
            total[what] = total.get(what, 0) + n
    return total


def _fanout_step(rig, profile, jobs, rate):
    """One step of the ramp at ``rate`` events/s over all jobs: its figures."""
    sent = rig.publish(jobs, rate, profile.fanout_seconds, sample_every=0 if not rig.pushes else 1e9)
    expected = sent.sent * profile.watchers_per_job
    if rig.pushes:
        rig.drain(sent.round, expected, DRAIN_SECONDS)
        got = rig.collect()
        latencies = got.latencies_ms(sent.round)
    else:
        time.sleep(DRAIN_SECONDS)
        got = rig.collect(timelines=True)
        # collected right after the drain: whatever a watcher held by then counts
        latencies = [x for x in freshness(sent.samples, got.timelines) if x != float("inf")]
    delivered = min(len(latencies), expected)
    stats = summary(latencies)
    ok = delivered >= MIN_DELIVERED * expected and stats["p99_ms"] is not None \
        and stats["p99_ms"] < MAX_P99_MS
    step = {"target_events_per_s": rate, "events_per_s": round(sent.sent / sent.elapsed, 1),
            "deliveries_per_s": round(delivered / sent.elapsed, 1),
            "delivered_fraction": round(delivered / expected, 4) if expected else None,
            **{k: stats[k] for k in ("p50_ms", "p99_ms", "max_ms")}, "ok": ok,
            "server_cpu_ms_per_event": round(1000 * sent.server_cpu_s / max(1, sent.sent), 3),
            "publisher_cpu_ms_per_event": round(1000 * sent.publisher_cpu_s / max(1, sent.sent), 3),
            # cores busy while publishing: watchers near 2.0 means the clients were the limit
            "cores_busy": {"server": round(sent.server_cpu_s / sent.elapsed, 2),
                           "publishers": round(sent.publisher_cpu_s / sent.elapsed, 2),
                           "watchers": round(sent.watcher_cpu_s / sent.elapsed, 2)}}
    if not rig.pushes:
        step.update(polls=got.polls, poll_errors=got.poll_errors,
                    polls_per_s=round(got.polls / (sent.elapsed + DRAIN_SECONDS), 1))
    step.update(lost=got.lost, duplicated=got.duplicated)
    return step


def flood(rig, profile):
    key = "flood_staleness_p99_ms"
    crowd, reason = _crowd_or_reason(rig, profile, key)
    if reason:
        return {key: None}, {key: reason}
    jobs, _ = crowd
    throttle = _throttle(rig)
    if rig.pushes:
        rig.quiet()  # the fan-out's last, overloaded step may still be draining
    rig.collect()  # forget what came before
    sent = rig.publish(jobs, None, profile.flood_seconds, min_interval=throttle, sample_every=0.01)
    if rig.pushes:
        rig.settle(sent.round, limit=profile.settle_seconds)
    else:
        time.sleep(profile.settle_seconds / 2)  # an overloaded web process answers polls late
    got = rig.collect(timelines=True)
    staleness = freshness(sent.samples, got.timelines, every_watcher=False)
    missing = sum(1 for x in staleness if x == float("inf"))
    stats = summary(staleness)
    notes = {}
    if stats["p99_ms"] is None and staleness:
        notes[key] = (f"{missing} of {len(staleness)} sampled values had not reached every watcher "
                      f"{time.time() - sent.ended_at:.0f} s after the flood ended")
    if not rig.pushes and got.poll_errors:
        notes["flood_poll_errors"] = (f"{got.poll_errors} in {got.polls} polls "
                                      f"({profile.jobs * profile.watchers_per_job} pollers)")
    if throttle:
        notes["flood_throttle"] = f"reporters coalesce progress (min_interval {throttle:g} s)"
    else:
        notes["flood_throttle"] = "no throttle: every report is published, the backlog drains after"
    return {key: stats["p99_ms"], "flood": {
        **stats, "reports_per_s": round(sent.sent / sent.elapsed, 1),
        "deliveries": got.deliveries(sent.round), "values_never_everywhere": missing,
        "min_interval_s": throttle, "lost": got.lost, "duplicated": got.duplicated,
        **({} if rig.pushes else {"polls": got.polls, "poll_errors": got.poll_errors})}}, notes


def idle(rig, profile):
    """Idle watchers (subscribed, 100 jobs) on a fresh server; 100 probe watchers, one per room of
    their own, tell how fast the server still answers: one event to each probe room, the 100
    spread over ``profile.probe_seconds``. (The same to the idle watchers' rooms, n deliveries,
    mostly measures these Python watchers at 10k.)"""
    keys = ("kb_per_idle_watcher", "event_p50_ms_at_10k_watchers")
    if not rig.pushes:
        return dict.fromkeys(keys), dict.fromkeys(
            keys, "polling keeps no connection open: its cost is requests (see fan-out)")
    reason = _too_many(rig, profile.idle_counts[0])
    if reason:
        return dict.fromkeys(keys), dict.fromkeys(keys, reason)
    pid = rig.contender.server_pid
    jobs, probe_jobs = rig.create_jobs(100), rig.create_jobs(100)
    probes = rig.connect(probe_jobs)["connected"]  # also warms the server up before its baseline
    time.sleep(1.0)
    baseline = procs.rss_kb(pid)
    levels, connected, notes = [], 0, {}
    for n in profile.idle_counts:
        # the probes count among the n sockets: gunicorn's --worker-connections 10000 is a hard cap
        joined = rig.connect([jobs[i % len(jobs)] for i in range(connected, n - probes)],
                             timeout=max(30.0, n / 150))
        connected += joined["connected"]
        time.sleep(1.0)
        rss = procs.rss_kb(pid)
        level = {"sockets": n, "connected": connected, "connect_seconds": joined["seconds"],
                 "rss_kb": rss, "kb_per_watcher": round((rss - baseline) / max(1, connected), 2)}
        level.update(_heartbeat_reach(rig, profile, connected + probes))
        for name, targets, expected in (("event", probe_jobs, probes),
                                        ("event_to_idle_rooms", jobs, connected)):
            # spread out in time: a pause of the server is then one sample, not all of them
            spread = profile.probe_seconds
            sent = rig.publish(targets, len(targets) / spread, spread + 5.0, count=len(targets))
            rig.drain(sent.round, expected, 5.0)
            latencies = rig.collect().latencies_ms(sent.round)
            level.update({f"{name}_{k}": v for k, v in summary(latencies).items()})
        levels.append(level)
        if joined["failed"]:
            notes["idle"] = (f"{joined['failed']} new watchers failed to connect on the way to "
                             f"{n}: {joined['errors']}")
            break
    rig.close_watchers()
    top = levels[-1]
    figures = {"kb_per_idle_watcher": top["kb_per_watcher"],
               "event_p50_ms_at_10k_watchers": top["event_p50_ms"],
               "idle": {"baseline_rss_kb": baseline, "probes": probes, "levels": levels}}
    if top["connected"] + probes < 10000:
        at = f"measured at {top['connected'] + probes} sockets, not 10k"
        notes["event_p50_ms_at_10k_watchers"] = notes["kb_per_idle_watcher"] = at
    return figures, notes


def _heartbeat_reach(rig, profile, watchers):
    """Did the first heartbeat after now reach every watcher within 2 s?"""
    rig.collect()
    since = time.time()
    time.sleep(profile.heartbeat_interval + 2.3)
    beats = [b for b in rig.collect().heartbeats if since <= b[0] <= time.time() - 2.0]
    if not beats:
        return {"heartbeat_reached": 0, "heartbeat_all_within_2s": False}
    _, reached, delay = beats[0]
    return {"heartbeat_reached": reached, "heartbeat_max_delay_ms": round(delay, 1),
            "heartbeat_all_within_2s": reached >= watchers and delay <= 2000}


async def _submit_load(url, concurrency, seconds):
    body = {"kind": "sleep", "params": {"steps": 1, "interval": 0}}
    latencies, statuses = [], {}
    end = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def client():
            while time.monotonic() < end:
                started = time.monotonic()
                try:
                    async with session.post(url + "/api/jobs", json=body) as response:
                        await response.read()
                        status = response.status
                except aiohttp.ClientError as exc:
                    status = type(exc).__name__
                statuses[status] = statuses.get(status, 0) + 1
                if status == 202:
                    latencies.append(1000 * (time.monotonic() - started))

        started = time.monotonic()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return latencies, statuses, elapsed


def submit(contender, profile, concurrency=32):
    """Job submissions per second through the API of one eventlet web process (no worker runs)."""
    latencies, statuses, elapsed = asyncio.run(_submit_load(contender.url, concurrency,
                                                            profile.submit_seconds))
    stats = summary(latencies)
    return {"rps": round(len(latencies) / elapsed, 1), "p99_ms": stats["p99_ms"],
            "p50_ms": stats["p50_ms"], "concurrency": concurrency, "seconds": round(elapsed, 1),
            "statuses": {str(k): v for k, v in statuses.items()}}


SCENARIOS = {"idle": idle, "single_hop": single_hop, "fanout": fanout, "flood": flood}
