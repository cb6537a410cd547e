// The index page: shows the chosen kind's fields, and this browser's recent jobs with live state.
// A job started in another tab appears here through the storage event, without a reload.
"use strict";

(() => {
  const { FINAL, el, age } = Notifier;
  const kindSelect = document.getElementById("kind");
  const list = document.getElementById("recent-jobs");
  const rows = new Map(); // job_id -> {row, snapshot}

  // Only the chosen kind's fieldset is shown and submitted.
  function showKind() {
    for (const fieldset of document.querySelectorAll("fieldset.params")) {
      const chosen = fieldset.dataset.kind === kindSelect.value;
      fieldset.hidden = !chosen;
      fieldset.disabled = !chosen;
    }
  }
  kindSelect.addEventListener("change", showKind);
  showKind();

  const socket = Notifier.connect();

  function render(entry) {
    const { row, snapshot } = entry;
    const state = snapshot.state || "PENDING";
    row.dataset.state = state;
    row.querySelector(".badge").textContent = state;
    row.querySelector(".badge").dataset.state = state;
    row.querySelector(".bar-fill").style.width = `${snapshot.percent || 0}%`;
    row.querySelector(".bar").dataset.state = state;
    row.querySelector(".percent").textContent = `${snapshot.percent || 0}%`;
    row.querySelector(".age").textContent = age(snapshot.created_at);
  }

  function update(snapshot) {
    const entry = rows.get(snapshot.job_id);
    if (!entry || (entry.snapshot.seq !== undefined && snapshot.seq < entry.snapshot.seq)) return;
    entry.snapshot = snapshot;
    render(entry);
  }

  function follow(job) {
    socket.emit("subscribe", { job_id: job.job_id }, (ack) => {
      if (ack && ack.ok) update(ack.job);
      else if (ack && ack.error && ack.error.code === "not_found") forget(job.job_id);
    });
  }

  function forget(jobId) {
    const entry = rows.get(jobId);
    if (entry) entry.row.remove();
    rows.delete(jobId);
    document.getElementById("recent-empty").hidden = rows.size > 0;
  }

  function add(job, atTop) {
    if (rows.has(job.job_id)) return;
    const row = el("li", { class: "job-row", "data-job-id": job.job_id },
      el("a", { href: `/jobs/${job.job_id}`, class: "kind" }, job.kind, " ",
        el("small", { class: "short-id", text: job.job_id.slice(0, 8) })),
      el("span", { class: "badge", text: "…" }),
      el("div", { class: "bar" }, el("div", { class: "bar-fill" })),
      el("span", { class: "percent" }),
      el("span", { class: "age" }));
    const entry = { row, snapshot: { ...job } };
    rows.set(job.job_id, entry);
    if (atTop) list.prepend(row); else list.append(row);
    render(entry);
    document.getElementById("recent-empty").hidden = true;
    if (socket.connected) follow(job);
  }

  for (const job of Notifier.recentJobs()) add(job, false);
  window.addEventListener("storage", (event) => {
    if (event.key !== Notifier.RECENT_KEY) return;
    for (const job of Notifier.recentJobs().reverse()) add(job, true);
  });

  // Subscribe again after every (re)connect: rooms do not survive a lost connection.
  socket.on("connect", () => {
    for (const { snapshot } of rows.values()) if (!FINAL.has(snapshot.state)) follow(snapshot);
  });
  socket.on("progress", update);
  socket.on("finished", update);
  setInterval(() => { for (const entry of rows.values()) render(entry); }, 5000);
})();
