"""A watcher process: thousands of watchers on one asyncio loop, recording what reaches them.

    python -m bench.watchers    # then JSON commands on stdin, one JSON answer per line on stdout

Watcher kinds: ``socketio`` (a websocket on namespace /jobs, subscribed to one job), ``redis``
(an asyncio redis-py subscriber on the job's channel) and ``poll`` (GET /api/jobs/<id> every
``POLL_INTERVAL``). Commands:

    {"cmd": "connect", "kind": k, "url": u, "jobs": [one job id per new watcher], "timeout": s}
    {"cmd": "count", "round": r}           deliveries of round r so far (r null: of any round, ever)
    {"cmd": "collect", "timelines": bool}  everything recorded since the last collect
    {"cmd": "close"}                       disconnect every watcher
    {"cmd": "exit"}
"""

import asyncio
import gc
import json
import random
import sys
import time
from collections import defaultdict

import aiohttp

from .procs import raise_open_files_limit
from .protocol import SocketIOClient

NAMESPACE = "/jobs"
POLL_INTERVAL = 0.5
HEARTBEAT_CHANNEL = "bench:heartbeat"
MAX_LATENCIES = 200_000  # per round and process; more are sampled down


def parse_message(message):
    """(round, send time) from a progress message ``r=<round> t=<time>``, or None."""
    try:
        r, t = message.split()
        return int(r[2:]), float(t[2:])
    except (AttributeError, ValueError):
        return None


class Watcher:
    """One watcher of one job: what it received, in order."""

    def __init__(self, index, job):
        self.index, self.job = index, job
        self.last_seq = None
        self.timeline = []  # [current, received_at] each time a newer value arrived
        self.close = None  # coroutine function that disconnects it


class Recorder:
    """Everything this process's watchers received since the last ``collect``."""

    def __init__(self):
        self.total = 0  # every delivery ever: collect does not reset it
        self._reset()

    def _reset(self):
        self.rounds = defaultdict(lambda: {"deliveries": 0, "latencies": []})
        self.heartbeats = {}  # server ts -> [watchers reached, largest delay]
        self.lost = self.duplicated = 0
        self.polls = 0
        self.poll_errors = {}  # what went wrong -> how often

    def snapshot(self, watcher, snapshot, received, pushed=True):
        seq, current = snapshot.get("seq"), snapshot.get("current")
        if pushed and isinstance(seq, int):
            if watcher.last_seq is not None:
                if seq <= watcher.last_seq:
                    self.duplicated += 1
                    return
                self.lost += seq - watcher.last_seq - 1
            watcher.last_seq = seq
        if isinstance(current, int) and (not watcher.timeline or current > watcher.timeline[-1][0]):
            watcher.timeline.append([current, received])
        parsed = parse_message(snapshot.get("message"))
        if pushed and parsed:
            self.total += 1
            stats = self.rounds[parsed[0]]
            stats["deliveries"] += 1
            stats["latencies"].append(received - parsed[1])

    def heartbeat(self, data, received):
        ts = data.get("ts") if isinstance(data, dict) else None
        if isinstance(ts, (int, float)):
            seen = self.heartbeats.setdefault(ts, [0, 0.0])
            seen[0] += 1
            seen[1] = max(seen[1], received - ts)

    def poll_error(self, what):
        self.poll_errors[what] = self.poll_errors.get(what, 0) + 1

    def collect(self, watchers, timelines):
        rounds = {}
        for r, stats in self.rounds.items():
            latencies = stats["latencies"]
            if len(latencies) > MAX_LATENCIES:
                latencies = random.sample(latencies, MAX_LATENCIES)
            rounds[r] = {"deliveries": stats["deliveries"],
                         "latencies_ms": [round(1000 * x, 3) for x in latencies]}
        answer = {
            "rounds": rounds, "lost": self.lost, "duplicated": self.duplicated,
            "heartbeats": [[ts, n, round(1000 * delay, 3)] for ts, (n, delay) in self.heartbeats.items()],
            "polls": self.polls, "poll_errors": self.poll_errors,
        }
        if timelines:
            answer["timelines"] = [{"job": w.job, "points": w.timeline} for w in watchers]
        for w in watchers:
            w.timeline = w.timeline[-1:]  # keep the newest value: the next values compare to it
        self._reset()
        return answer


async def connect_socketio(session, url, watcher, recorder):
    def on_event(name, args, received):
        if name in ("progress", "finished") and args and isinstance(args[0], dict):
            recorder.snapshot(watcher, args[0], received)
        elif name == "heartbeat" and args:
            recorder.heartbeat(args[0], received)

    client = SocketIOClient(session, url, NAMESPACE, on_event)
    try:
        await client.connect()
        ack = await client.call("subscribe", {"job_id": watcher.job})
    except BaseException:
        await client.close()
        raise
    if not (isinstance(ack, dict) and ack.get("ok")):
        await client.close()
        raise RuntimeError(f"subscribe refused: {ack}")
    watcher.last_seq = ack["job"].get("seq")
    watcher.close = client.close


async def _read_resp(reader):
    """One RESP2 reply: the arrays, bulk strings and integers a subscriber gets."""
    line = await reader.readuntil(b"\r\n")
    kind, body = line[:1], line[1:-2]
    if kind == b"*":
        return [await _read_resp(reader) for _ in range(int(body))]
    if kind == b"$":
        return None if body == b"-1" else (await reader.readexactly(int(body) + 2))[:-2]
    if kind == b":":
        return int(body)
    raise ConnectionError(f"unexpected reply from Redis: {line[:80]!r}")


async def connect_redis(url, watcher, recorder):
    """A bare asyncio subscriber (SUBSCRIBE over a socket, RESP read by hand): the floor should
    cost the client as little as possible, and redis-py's asyncio PubSub costs it more."""
    address = url.split("//", 1)[1].split("/", 1)[0]
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    channels = [watcher.job.encode(), HEARTBEAT_CHANNEL.encode()]
    parts = [b"SUBSCRIBE", *channels]
    writer.write(b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
    for _ in channels:
        await _read_resp(reader)  # [subscribe, channel, count]

    async def listen():
        while True:
            kind, channel, data = await _read_resp(reader)
            received = time.time()
            if kind != b"message":
                continue
            if channel == channels[1]:
                recorder.heartbeat(json.loads(data), received)
            else:
                recorder.snapshot(watcher, json.loads(data), received)

    task = asyncio.create_task(listen())

    async def close():
        task.cancel()
        writer.close()

    watcher.close = close


async def connect_poll(session, url, watcher, recorder):
    async def poll():
        await asyncio.sleep(random.uniform(0, POLL_INTERVAL))  # spread the watchers over the period
        next_at = time.monotonic()
        while True:
            try:
                async with session.get(f"{url}/api/jobs/{watcher.job}") as response:
                    body = await response.json()
                    received = time.time()
                recorder.polls += 1
                if response.status == 200:
                    recorder.snapshot(watcher, body, received, pushed=False)
                else:
                    recorder.poll_error(f"HTTP {response.status}")
            except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
                recorder.poll_error(type(exc).__name__)
            next_at += POLL_INTERVAL
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    task = asyncio.create_task(poll())

    async def close():
        task.cancel()

    watcher.close = close


class WatcherProcess:
    def __init__(self):
        self.watchers = []
        self.next_index = 0
        self.recorder = Recorder()
        self.session = None

    async def connect(self, kind, url, jobs, timeout=60.0, concurrency=100):
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                 timeout=aiohttp.ClientTimeout(total=30))
        if not jobs:
            return {"connected": 0, "failed": 0, "errors": [], "elapsed": 0.0}
        gate = asyncio.Semaphore(concurrency)
        errors = []
        start = time.monotonic()

        async def one(index, job):
            watcher = Watcher(index, job)
            async with gate:
                try:
                    if kind == "socketio":
                        await connect_socketio(self.session, url, watcher, self.recorder)
                    elif kind == "redis":
                        await connect_redis(url, watcher, self.recorder)
                    else:
                        await connect_poll(self.session, url, watcher, self.recorder)
                    self.watchers.append(watcher)
                    return True
                except Exception as exc:  # counted and reported; the others go on
                    errors.append(f"{type(exc).__name__}: {exc}")
                    return False

        first = self.next_index
        self.next_index += len(jobs)
        tasks = [asyncio.create_task(one(first + n, job)) for n, job in enumerate(jobs)]
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        connected = sum(1 for task in done if task.result())
        # The watchers live as long as this process: out of the collector's reach, a full
        # collection over 5k of them (hundreds of ms) no longer shows as the server's latency.
        gc.freeze()
        return {"connected": connected, "failed": len(jobs) - connected,
                "errors": sorted(set(errors))[:5], "elapsed": time.monotonic() - start}

    async def close(self):
        watchers, self.watchers = self.watchers, []
        closers = [w.close() for w in watchers if w.close]
        for start in range(0, len(closers), 500):
            await asyncio.gather(*closers[start:start + 500], return_exceptions=True)
        if self.session is not None:
            await self.session.close()
            self.session = None
        return {"closed": len(closers)}

    async def handle(self, command):
        name = command.pop("cmd")
        if name == "connect":
            return await self.connect(**command)
        if name == "count":
            if command["round"] is None:
                return {"deliveries": self.recorder.total}
            stats = self.recorder.rounds.get(command["round"])
            return {"deliveries": stats["deliveries"] if stats else 0}
        if name == "collect":
            return self.recorder.collect(self.watchers, command.get("timelines", False))
        if name == "close":
            return await self.close()
        return {"error": f"unknown command {name}"}


async def main():
    raise_open_files_limit()
    process = WatcherProcess()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line or json.loads(line).get("cmd") == "exit":
            break
        try:
            answer = await process.handle(json.loads(line))
        except Exception as exc:  # the bench reports it; this process stays usable
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
    await process.close()


if __name__ == "__main__":
    asyncio.run(main())
