// The node_socketio publisher: @socket.io/redis-emitter, driven like bench/publisher.py.
// Reads one JSON command per line on stdin and answers each with one JSON line on stdout:
//   {"cmd": "create", "n": N}  -> {"jobs": [ids]}
//   {"cmd": "run", "jobs": [...], "rate": R or null (flat out), "duration": s, "count": N or null,
//    "round": k, "sample_every": s} -> {"sent", "elapsed", "samples": {job: [[current, t], ...]}}
// Each publish is awaited before the next, as a Python reporter's blocking call would be.
"use strict";
const crypto = require("crypto");
const readline = require("readline");
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");

const now = () => (performance.timeOrigin + performance.now()) / 1000;
const sleep = (s) => new Promise((resolve) => setTimeout(resolve, s * 1000));

async function main() {
  const client = createClient({ url: process.env.REDIS_URL });
  await client.connect();
  // The emitter does not hand back its PUBLISH; this wrapper keeps it so it can be awaited.
  let lastPublish = null;
  const recorder = { publish: (channel, msg) => (lastPublish = client.publish(channel, msg)) };
  const jobs = new Emitter(recorder).of("/jobs");
  const current = new Map(); // job id -> the last value reported for it
  const seq = new Map();

  async function run({ jobs: ids, rate, duration, count, round, sample_every: sampleEvery = 0 }) {
    const samples = Object.fromEntries(ids.map((id) => [id, []]));
    const lastSample = new Map();
    const start = now();
    const limit = count ?? Infinity;
    let sent = 0;
    while (sent < limit) {
      const t = now();
      if (t - start >= duration) break;
      if (rate) {
        const due = start + sent / rate;
        if (due > t) { await sleep(due - t); continue; }
      }
      const id = ids[sent % ids.length];
      const value = (current.get(id) ?? 0) + 1;
      const n = (seq.get(id) ?? 0) + 1;
      current.set(id, value);
      seq.set(id, n);
      const stamp = now();
      jobs.to(id).emit("progress", { job_id: id, state: "PROGRESS", current: value, seq: n,
                                     message: `r=${round} t=${stamp.toFixed(6)}` });
      await lastPublish;
      if (stamp - (lastSample.get(id) ?? 0) >= sampleEvery) {
        samples[id].push([value, stamp]);
        lastSample.set(id, stamp);
      }
      sent += 1;
    }
    return { sent, elapsed: now() - start, samples };
  }

  const lines = readline.createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    const command = JSON.parse(line);
    let reply;
    if (command.cmd === "create") {
      reply = { jobs: Array.from({ length: command.n }, () => crypto.randomUUID()) };
    } else if (command.cmd === "run") {
      reply = await run(command);
    } else if (command.cmd === "exit") {
      break;
    } else {
      reply = { error: `unknown command ${command.cmd}` };
    }
    process.stdout.write(JSON.stringify(reply) + "\n");
  }
  await client.quit();
}

main().catch((err) => { console.error(err); process.exit(1); });
