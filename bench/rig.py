"""A contender on the test bench: its publisher and watcher processes, driven as one."""

import os
import sys
import time
from dataclasses import dataclass, field

from . import procs

WATCHER_PROCESSES = 2  # one Python process runs out of CPU before the servers do
PUBLISHER_PROCESSES = 4  # a reporter waits on two Redis round trips per call


@dataclass
class Published:
    round: int
    sent: int
    elapsed: float
    samples: dict
    server_cpu_s: float
    publisher_cpu_s: float
    watcher_cpu_s: float
    ended_at: float = field(default_factory=time.time)


@dataclass
class Received:
    rounds: dict
    lost: int
    duplicated: int
    heartbeats: list  # [ts, watchers reached, largest delay in ms]
    timelines: list
    polls: int
    poll_errors: dict

    def deliveries(self, round):
        stats = self.rounds.get(str(round))
        return stats["deliveries"] if stats else 0

    def latencies_ms(self, round):
        stats = self.rounds.get(str(round))
        return stats["latencies_ms"] if stats else []


def _add_counts(counts):
    total = {}
    for each in counts:
        for what, n in each.items():
            total[what] = total.get(what, 0) + n
    return total


class Rig:
    def __init__(self, contender, log_dir):
        self.contender = contender
        name = contender.name
        self.publishers = [procs.Child(f"{name}-publisher-{n}", contender.publisher_argv(),
                                       contender.publisher_env(), log_dir)
                           for n in range(PUBLISHER_PROCESSES)]
        self.watchers = [procs.Child(f"{name}-watchers-{n}", [sys.executable, "-m", "bench.watchers"],
                                     dict(os.environ, PYTHONUNBUFFERED="1"), log_dir)
                         for n in range(WATCHER_PROCESSES)]
        self.round = 0
        self.crowd = None  # (jobs, watchers connected) kept from fan-out for the flood
        self.profile_dir = None  # py-spy output, when --profile is given

    @property
    def pushes(self):
        return self.contender.transport != "poll"

    def create_jobs(self, n):
        return self.publishers[0].call("create", n=n, timeout=60)["jobs"]

    def connect(self, jobs, timeout=30.0):
        """One new watcher per entry of ``jobs``, spread over the watcher processes."""
        parts = [jobs[i::len(self.watchers)] for i in range(len(self.watchers))]
        answers = procs.call_all(self.watchers, "connect", timeout + 30, [
            {"kind": self.contender.transport, "url": self.contender.watch_url, "jobs": part,
             "timeout": timeout} for part in parts])
        return {"connected": sum(a["connected"] for a in answers),
                "failed": sum(a["failed"] for a in answers),
                "errors": sorted({e for a in answers for e in a["errors"]})[:5],
                "seconds": round(max(a["elapsed"] for a in answers), 2)}

    def publish(self, jobs, rate, duration, *, count=None, min_interval=0.0, sample_every=1e9):
        """Report progress on ``jobs`` (split over the publishers) as one numbered round."""
        self.round += 1
        parts = [part for part in (jobs[i::len(self.publishers)] for i in range(len(self.publishers)))
                 if part]
        active = self.publishers[:len(parts)]
        commands = [{"jobs": part, "rate": rate * len(part) / len(jobs) if rate else None,
                     "duration": duration, "count": len(part) * count // len(jobs) if count else None,
                     "round": self.round, "min_interval": min_interval, "sample_every": sample_every}
                    for part in parts]
        groups = [[self.contender.server_pid], [p.pid for p in active], [w.pid for w in self.watchers]]
        before = [sum(map(procs.cpu_seconds, pids)) for pids in groups]
        answers = procs.call_all(active, "run", duration + 60, commands)
        used = [sum(map(procs.cpu_seconds, pids)) - was for pids, was in zip(groups, before)]
        samples = {}
        for answer in answers:
            samples.update(answer["samples"])
        return Published(self.round, sum(a["sent"] for a in answers),
                         max(a["elapsed"] for a in answers), samples, *used)

    def deliveries(self, round):
        return sum(a["deliveries"] for a in procs.call_all(self.watchers, "count", 30,
                                                           [{"round": round}] * len(self.watchers)))

    def drain(self, round, expected, limit):
        """Wait until ``expected`` deliveries of ``round`` arrived, at most ``limit`` seconds."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.deliveries(round) < expected:
            time.sleep(0.05)

    def settle(self, round, limit, quiet=0.6):
        """Wait until deliveries of ``round`` (None: of any round) have begun and then stopped
        growing for ``quiet`` s, at most ``limit`` s."""
        deadline = time.monotonic() + limit
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.deliveries(round)
            if now != last:
                last, since = now, time.monotonic()
            elif (now or round is None) and time.monotonic() - since >= quiet:
                return
            time.sleep(0.1)

    def quiet(self, limit=20.0):
        """Let a backlog from an overloaded round drain before the next one is measured."""
        self.settle(None, limit, quiet=1.0)

    def collect(self, timelines=False):
        answers = procs.call_all(self.watchers, "collect", 120,
                                 [{"timelines": timelines}] * len(self.watchers))
        rounds, beats = {}, {}
        for answer in answers:
            for r, stats in answer["rounds"].items():
                merged = rounds.setdefault(r, {"deliveries": 0, "latencies_ms": []})
                merged["deliveries"] += stats["deliveries"]
                merged["latencies_ms"] += stats["latencies_ms"]
            for ts, reached, delay in answer["heartbeats"]:
                seen = beats.setdefault(ts, [0, 0.0])
                seen[0] += reached
                seen[1] = max(seen[1], delay)
        return Received(rounds, sum(a["lost"] for a in answers), sum(a["duplicated"] for a in answers),
                        sorted([ts, n, delay] for ts, (n, delay) in beats.items()),
                        [t for a in answers for t in a.get("timelines", [])],
                        sum(a["polls"] for a in answers), _add_counts(a["poll_errors"] for a in answers))

    def close_watchers(self):
        procs.call_all(self.watchers, "close", 120)
        self.crowd = None

    def stop(self):
        for child in self.publishers + self.watchers:
            child.stop()
