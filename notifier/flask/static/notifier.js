// Shared by the pages: the /jobs socket, the connection indicator, this browser's recent jobs,
// and small formatting helpers. Plain JS, no build step; text always goes in as text, never HTML.
"use strict";

const Notifier = (() => {
  const FINAL = new Set(["SUCCESS", "FAILURE", "REVOKED", "LOST"]);
  const RECENT_KEY = "notifier.recentJobs";
  const RECENT_MAX = 25;
  const heartbeatInterval = Number(document.body.dataset.heartbeatInterval); // 0: no heartbeats
  let serverClockOffset = 0; // server time minus this browser's, learnt from heartbeats

  // ---- connection -------------------------------------------------------------------------
  function connect() {
    // ?transport=polling forces long-polling (the client falls back to it by itself when needed).
    const forced = new URLSearchParams(location.search).get("transport");
    const options = ["polling", "websocket"].includes(forced) ? { transports: [forced] } : {};
    const socket = io("/jobs", options);
    const indicator = document.getElementById("connection");
    let lastBeat = 0;

    function show(state, text) {
      if (!indicator) return;
      indicator.dataset.state = state;
      indicator.textContent = text;
    }
    socket.on("connect", () => { lastBeat = Date.now(); show("connected", "live"); });
    socket.on("disconnect", (reason) => {
      if (reason === "io client disconnect") { show("offline", "offline"); return; }
      show("reconnecting", "reconnecting…");
      // The client retries by itself except when the server closed the connection: ask again.
      if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
    });
    socket.io.on("reconnect_attempt", () => show("reconnecting", "reconnecting…"));
    socket.io.on("reconnect_failed", () => show("offline", "offline"));
    socket.on("connect_error", () => show(navigator.onLine ? "reconnecting" : "offline",
                                          navigator.onLine ? "reconnecting…" : "offline"));
    window.addEventListener("offline", () => show("offline", "offline"));
    window.addEventListener("online", () => { if (socket.connected) show("connected", "live"); });
    socket.on("announcement", announce);
    socket.on("heartbeat", (beat) => {
      lastBeat = Date.now();
      serverClockOffset = beat.ts - Date.now() / 1000;
      if (socket.connected) show("connected", "live");
    });
    // No heartbeat for three intervals: the link may look open but nothing is coming through.
    if (heartbeatInterval > 0) {
      setInterval(() => {
        if (socket.connected && Date.now() - lastBeat > 3 * heartbeatInterval * 1000) show("stale", "stale");
      }, 1000);
    }
    return socket;
  }

  // ---- operator announcements (python -m notifier.announce): a dismissible banner each ------
  function announce(title, body) {
    const area = document.getElementById("announcements");
    if (!area) return;
    const dismiss = el("button", { type: "button", class: "dismiss", "aria-label": "Dismiss", text: "×" });
    const banner = el("div", { class: "announcement", role: "alert" },
      el("strong", { class: "title", text: String(title ?? "") }),
      el("span", { class: "body", text: String(body ?? "") }),
      dismiss);
    dismiss.addEventListener("click", () => banner.remove());
    area.append(banner);
  }

  // ---- this browser's recent jobs (localStorage; other tabs hear of changes) ---------------
  function recentJobs() {
    try {
      const jobs = JSON.parse(localStorage.getItem(RECENT_KEY) || "[]");
      return Array.isArray(jobs) ? jobs : [];
    } catch (e) {
      return [];
    }
  }

  function rememberJob(job) {
    const jobs = recentJobs().filter((j) => j.job_id !== job.job_id);
    jobs.unshift({ job_id: job.job_id, kind: job.kind, created_at: job.created_at });
    try {
      localStorage.setItem(RECENT_KEY, JSON.stringify(jobs.slice(0, RECENT_MAX)));
    } catch (e) { /* storage full or disabled: the list is a convenience */ }
  }

  // ---- formatting ---------------------------------------------------------------------------
  function serverNow() { return Date.now() / 1000 + serverClockOffset; }

  function duration(seconds) {
    if (!isFinite(seconds) || seconds < 0) return "";
    seconds = Math.round(seconds);
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function age(createdAt) {
    const text = duration(serverNow() - createdAt);
    return text ? `${text} ago` : "";
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  return { FINAL, connect, recentJobs, rememberJob, serverNow, duration, age, el, RECENT_KEY };
})();
