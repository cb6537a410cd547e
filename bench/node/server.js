// The node_socketio contender: socket.io 4 with the Redis adapter, speaking the notifier's /jobs
// namespace (subscribe -> join the job's room and ack; a heartbeat to the whole namespace).
// Jobs live nowhere: the ack carries a stub snapshot. Env: PORT, REDIS_URL, HEARTBEAT_INTERVAL.
"use strict";
const http = require("http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const now = () => (performance.timeOrigin + performance.now()) / 1000;
const error = (code, message) => ({ ok: false, error: { code, message } });

async function main() {
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const io = new Server({ adapter: createAdapter(pub, sub), serveClient: false });
  const jobs = io.of("/jobs");

  jobs.on("connection", (socket) => {
    socket.on("subscribe", (data, ack) => {
      if (typeof ack !== "function") return;
      if (!data || typeof data.job_id !== "string") return ack(error("invalid", "job_id is required"));
      socket.join(data.job_id);
      ack({ ok: true, job: { job_id: data.job_id, state: "PROGRESS", seq: null } });
    });
    socket.on("unsubscribe", (data, ack) => {
      if (data && typeof data.job_id === "string") socket.leave(data.job_id);
      if (typeof ack === "function") ack({ ok: true });
    });
  });

  // Like the notifier's heartbeat: this process's own clients only, not through Redis.
  const interval = 1000 * Number(process.env.HEARTBEAT_INTERVAL || 5);
  setInterval(() => {
    jobs.local.emit("heartbeat", { ts: now(), server: String(process.pid), active_jobs: null });
  }, interval);

  const server = http.createServer();
  io.attach(server);
  server.listen(Number(process.env.PORT), "127.0.0.1", () => {
    console.log(`listening on 127.0.0.1:${process.env.PORT}`);
  });
  const stop = () => io.close(() => process.exit(0));
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => { console.error(err); process.exit(1); });
