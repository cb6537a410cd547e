"""What a run tells: a markdown table (with ratios to node_socketio and redis_floor), and a PNG."""

import json

HEADLINE = (
    ("single_hop_p99_ms", "single hop p99 ms"),
    ("fanout_max_deliveries_per_s", "fan-out max deliveries/s"),
    ("flood_staleness_p99_ms", "flood staleness p99 ms"),
    ("kb_per_idle_watcher", "KB per idle watcher"),
    ("event_p50_ms_at_10k_watchers", "event p50 ms at 10k watchers"),
)
REFERENCES = ("node_socketio", "redis_floor")


def _cell(value):
    if value is None:
        return "null"
    if isinstance(value, float) and value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"


def _ratio(value, reference):
    if value is None or not reference:
        return "–"
    return f"{value / reference:.2f}×"


def markdown(results):
    """The headline figures per contender, then the same as ratios to each reference."""
    contenders = results["contenders"]
    header = "| contender | " + " | ".join(title for _, title in HEADLINE) + " |"
    rule = "|---|" + "---:|" * len(HEADLINE)
    lines = [header, rule]
    for name, figures in contenders.items():
        lines.append(f"| {name} | " + " | ".join(_cell(figures.get(k)) for k, _ in HEADLINE) + " |")
    for reference in REFERENCES:
        if reference not in contenders:
            continue
        base = contenders[reference]
        lines += ["", f"Relative to {reference} (value ÷ {reference}'s; for deliveries/s higher "
                      "is better, for the others lower is):", "", header, rule]
        for name, figures in contenders.items():
            lines.append(f"| {name} | " + " | ".join(_ratio(figures.get(k), base.get(k))
                                                      for k, _ in HEADLINE) + " |")
    lines += ["", "Fan-out cost at the highest passing step (CPU used while publishing: less at the mercy of the neighbours than latency):",
              "", "| contender | events/s | server CPU ms per event (10 deliveries) | "
                  "publisher CPU ms per event | cores busy: server / publishers / watchers |",
              "|---|---:|---:|---:|---|"]
    for name, figures in contenders.items():
        steps = (figures.get("fanout") or {}).get("steps") or []
        passed = [s for s in steps if s["ok"]] or steps[:1]
        if passed:
            step = max(passed, key=lambda s: s["target_events_per_s"])
            busy = step["cores_busy"]
            lines.append(f"| {name} | {_cell(step['events_per_s'])} | {step['server_cpu_ms_per_event']} | "
                         f"{step['publisher_cpu_ms_per_event']} | {busy['server']} / "
                         f"{busy['publishers']} / {busy['watchers']} |")
    submit = results.get("submit")
    if submit:
        lines += ["", f"submit (POST /api/jobs, concurrency {submit.get('concurrency', 32)}, one "
                      f"eventlet web process): {_cell(submit.get('rps'))} req/s, "
                      f"p99 {_cell(submit.get('p99_ms'))} ms"]
    notes = []
    for name, figures in contenders.items():
        by_reason = {}
        for key, why in figures.get("notes", {}).items():
            by_reason.setdefault(why, []).append(key)
        notes += [f"- {name}: {', '.join(keys)}: {why}" for why, keys in by_reason.items()]
    notes += [f"- submit: {why}" for why in (submit or {}).get("notes", {}).values()]
    if notes:
        lines += ["", "Notes:", *notes]
    for name, figures in contenders.items():
        for process, summary in ((figures.get("fanout") or {}).get("profile") or {}).items():
            lines += ["", f"py-spy, {name} {process} during the fan-out ({summary['samples']} samples):",
                      "self: " + "; ".join(f"{f} {p}%" for f, p in summary.get("self_percent", [])[:10]),
                      "inclusive: " + "; ".join(f"{f} {p}%" for f, p in
                                                summary.get("inclusive_percent", [])[:10])]
    return "\n".join(lines)


def write_json(results, path):
    with open(path, "w") as f:
        json.dump(results, f, indent=1)


def draw_png(results, path):
    """Latency CDF (single hop) and max deliveries/s per contender, and p99 along the fan-out ramp."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    contenders = results["contenders"]
    fig, (cdf, bars, ramp) = plt.subplots(1, 3, figsize=(17, 5.2))
    for name, figures in contenders.items():
        latencies = (figures.get("single_hop") or {}).get("latencies_ms") or []
        if latencies:
            n = len(latencies)
            cdf.plot(latencies, [(i + 1) / n for i in range(n)], label=name)
        steps = sorted((figures.get("fanout") or {}).get("steps") or [],
                       key=lambda step: step["target_events_per_s"])  # the refining steps come last
        if steps:
            ramp.plot([s["deliveries_per_s"] or 0.1 for s in steps], [s["p99_ms"] or 0.1 for s in steps],
                      marker="o", label=name)
    cdf.set(xscale="log", xlabel="latency, ms (log)", ylabel="fraction of events",
            title="Single hop: latency CDF (1 watcher, 200 events/s)")
    cdf.grid(True, which="both", alpha=0.3)
    cdf.legend(fontsize=8)

    names = list(contenders)
    values = [contenders[n].get("fanout_max_deliveries_per_s") or 0 for n in names]
    bars.barh(names, values, color="tab:blue")
    for y, (name, value) in enumerate(zip(names, values)):
        label = f"{value:,.0f}" if contenders[name].get("fanout_max_deliveries_per_s") is not None \
            else "null"
        bars.text(value, y, " " + label, va="center", fontsize=8)
    bars.invert_yaxis()
    bars.set(xlabel="deliveries/s", title="Fan-out: max sustained deliveries/s\n(100 jobs × 10 watchers)")

    ramp.axhline(500, color="grey", linestyle="--", linewidth=1)
    ramp.set(xscale="log", yscale="log", xlabel="deliveries/s (log)", ylabel="p99 latency, ms (log)",
             title="Fan-out ramp: p99 per step (dashed: 500 ms limit)")
    shown = [x for line in ramp.get_lines() for x in line.get_xdata()]
    if shown:
        ramp.set_xticks([t for t in (500, 1000, 2000, 5000, 10000, 20000, 50000, 100000)
                         if min(shown) / 1.5 <= t <= max(shown) * 1.5])
    ramp.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ramp.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ramp.grid(True, which="both", alpha=0.3)
    ramp.legend(fontsize=8)

    mode = "quick" if results.get("meta", {}).get("quick") else "full"
    fig.suptitle(f"job notifier bench ({mode} run, 2 shared cores: indicative figures)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
