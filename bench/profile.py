"""Optional: py-spy on the server and one publisher while the fan-out runs (``--profile DIR``).

py-spy (``pip install py-spy``) samples each process from outside; this writes its flamegraph
(``<process>.svg``) and a collapsed-stack file (``<process>.txt``), and summarises the latter as
the functions where the samples were (self) and the ones they passed through (inclusive).
Only samples holding the GIL are kept (``--gil``): Python-level CPU, not time spent waiting on a
socket (which py-spy would otherwise count as busy in these processes) nor in the kernel.
"""

import os
import shutil
import signal
import subprocess
from collections import Counter

from . import procs


class Profiler:
    """One py-spy per (name, pid), in both output formats, stopped with SIGINT (py-spy then writes)."""

    def __init__(self, out_dir, targets, rate=100):
        self.out_dir = out_dir
        self.runs = []
        binary = shutil.which("py-spy") or os.path.join(procs.BIN, "py-spy")
        if not os.path.exists(binary):
            raise RuntimeError("py-spy is not installed (pip install py-spy)")
        os.makedirs(out_dir, exist_ok=True)
        for name, pid in targets:
            for fmt, ext in (("flamegraph", "svg"), ("raw", "txt")):
                path = os.path.join(out_dir, f"{name}.{ext}")
                self.runs.append((name, path, subprocess.Popen(
                    [binary, "record", "--pid", str(pid), "--rate", str(rate), "--format", fmt,
                     "--gil", "--nonblocking", "--output", path],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))

    def stop(self):
        for _, _, popen in self.runs:
            popen.send_signal(signal.SIGINT)
        for _, _, popen in self.runs:
            try:
                popen.wait(20)
            except subprocess.TimeoutExpired:
                popen.kill()
        return {name: summarise(path) for name, path, _ in self.runs if path.endswith(".txt")}


def _frame(text):
    """'function (path/to/module.py:123)' -> 'function (module.py)'."""
    name, _, where = text.partition(" (")
    return f"{name} ({os.path.basename(where.split(':')[0])})" if where else name


def summarise(path, top=15):
    """Top functions by self and by inclusive samples from a py-spy raw (collapsed) file."""
    own, through, total = Counter(), Counter(), 0
    try:
        with open(path) as f:
            for line in f:
                stack, _, count = line.rstrip().rpartition(" ")
                if not stack or not count.isdigit():
                    continue
                n = int(count)
                frames = [_frame(part) for part in stack.split(";") if part.strip()]
                total += n
                if frames:
                    own[frames[-1]] += n
                for frame in set(frames):
                    through[frame] += n
    except OSError:
        return {"samples": 0}

    def share(counter):
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)] if total else []

    return {"samples": total, "self_percent": share(own), "inclusive_percent": share(through)}
