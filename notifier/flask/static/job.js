// The job page: follows one job live, keeps every message in seq order, and resubscribes with
// last_seq after a reconnect so the log has no gaps and no duplicates.
"use strict";

(() => {
  const { FINAL, el, duration, serverNow } = Notifier;
  const $ = (id) => document.getElementById(id);
  let job = JSON.parse($("job-data").textContent);
  const log = new Map(); // seq -> snapshot: what the message log shows, one entry per seq
  let contiguous = -1; // highest seq up to which nothing is missing (or was trimmed by the server)
  let firstProgress = null; // the earliest PROGRESS snapshot seen, for the rate
  let notifiedFinish = false;

  Notifier.rememberJob(job);

  // What to ask the server to replay after. A subscribe's ack says where its replay started
  // (history_from): older seqs are gone from the server's history for good, so they are no
  // longer waited for (or asked for again on every reconnect).
  function advance(historyFrom) {
    if (Number.isInteger(historyFrom) && historyFrom - 1 > contiguous) contiguous = historyFrom - 1;
    while (log.has(contiguous + 1)) contiguous += 1;
    return contiguous;
  }

  function addToLog(snapshot) {
    const item = el("li", { "data-seq": String(snapshot.seq) },
      el("span", { class: "seq", text: `#${snapshot.seq}` }),
      el("span", { class: "badge small", "data-state": snapshot.state, text: snapshot.state }),
      el("span", { class: "text", text: snapshot.message || "" }));
    // Insert in seq order, whatever order events arrived in (nearly always: at the end).
    const list = $("log");
    const following = list.scrollHeight - list.scrollTop - list.clientHeight < 8;
    const last = list.lastElementChild;
    if (!last || Number(last.dataset.seq) < snapshot.seq) list.append(item);
    else list.insertBefore(item, [...list.children].find((li) => Number(li.dataset.seq) > snapshot.seq));
    // Keep the newest message in view, unless the reader scrolled up to look at older ones.
    if (following) list.scrollTop = list.scrollHeight;
  }

  function record(snapshot) {
    if (!log.has(snapshot.seq)) {
      log.set(snapshot.seq, snapshot);
      addToLog(snapshot);
    }
    if (snapshot.state === "PROGRESS" && (!firstProgress || snapshot.seq < firstProgress.seq)) {
      firstProgress = snapshot;
    }
    if (snapshot.seq >= job.seq) show(snapshot);
  }

  function eta(snapshot) {
    if (snapshot.state !== "PROGRESS" || !firstProgress || !snapshot.total) return "";
    const done = snapshot.current - firstProgress.current;
    const took = snapshot.updated_at - firstProgress.updated_at;
    if (done <= 0 || took <= 0) return "";
    const left = (snapshot.total - snapshot.current) * (took / done);
    return `about ${duration(left)} left`;
  }

  function renderResult(result) {
    if (result && typeof result === "object" && !Array.isArray(result) &&
        Object.values(result).every((v) => v === null || typeof v !== "object")) {
      const list = el("dl", { class: "result" });
      for (const [name, value] of Object.entries(result)) {
        list.append(el("dt", { text: name }), el("dd", { text: String(value) }));
      }
      return list;
    }
    return el("pre", { class: "result", text: JSON.stringify(result, null, 2) });
  }

  function show(snapshot) {
    const wasFinal = FINAL.has(job.state);
    job = snapshot;
    const final = FINAL.has(job.state);
    $("state").textContent = job.state;
    $("state").dataset.state = job.state;
    $("bar-fill").style.width = `${job.percent}%`;
    $("bar").setAttribute("aria-valuenow", String(job.percent));
    $("bar").dataset.state = job.state;
    $("percent").textContent = `${job.percent}%`;
    $("counts").textContent = job.total ? `${job.current} / ${job.total}` : "";
    $("eta").textContent = eta(job);
    $("message").textContent = job.message || "";
    if ($("cancel")) $("cancel").hidden = final;
    document.title = final ? `${job.state.toLowerCase()} · ${job.kind}` : `${Math.floor(job.percent)}% · ${job.kind}`;
    if (final) {
      $("outcome").hidden = false;
      $("outcome-title").textContent = job.state === "SUCCESS" ? "Result" : "Outcome";
      $("result").replaceChildren(job.state === "SUCCESS" ? renderResult(job.result) : "");
      $("error").hidden = !job.error;
      $("error").textContent = job.error || "";
      $("notify").hidden = true;
      if (!wasFinal) notifyFinished();
    }
    tick();
  }

  function tick() {
    const end = job.finished_at || serverNow();
    $("elapsed").textContent = `${duration(end - job.created_at)} elapsed`;
  }

  function notifyFinished() {
    if (notifiedFinish || !document.hidden || !("Notification" in window)) return;
    if (Notification.permission !== "granted") return;
    notifiedFinish = true;
    new Notification(`${job.kind}: ${job.state.toLowerCase()}`, { body: job.error || job.message || "" });
  }

  // ---- socket -----------------------------------------------------------------------------
  const socket = Notifier.connect();
  function subscribe() {
    socket.emit("subscribe", { job_id: job.job_id, last_seq: advance() }, (ack) => {
      if (ack && ack.ok) { record(ack.job); advance(ack.history_from); return; }
      const error = (ack && ack.error) || {};
      $("message").textContent = error.message || "cannot follow this job";
      // Retry what may pass later: the server cannot read job state now, or asks us to wait.
      if (error.code === "unavailable") setTimeout(subscribe, 3000);
      if (error.code === "rate_limited") setTimeout(subscribe, 1000 * Math.max(1, Number(error.retry_after) || 1));
    });
  }
  socket.on("connect", subscribe); // on every (re)connect: the server replays what we missed
  socket.on("progress", (snapshot) => { if (snapshot.job_id === job.job_id) record(snapshot); });
  socket.on("finished", (snapshot) => { if (snapshot.job_id === job.job_id) record(snapshot); });

  // ---- controls -----------------------------------------------------------------------------
  // Only a viewer who may cancel gets the button: one the server found the job's cancel token
  // for (the page carries it, rendered for that viewer alone: the submitting browser's session,
  // in the standalone app), or one the app's can_cancel lets (no token: the browser's own
  // cookies and Origin speak for it). A running job stops at its next step: the button says so
  // until the final event arrives.
  const cancelToken = $("job").dataset.cancelToken;
  if ($("cancel")) $("cancel").addEventListener("click", async () => {
    const button = $("cancel");
    button.disabled = true;
    button.textContent = "Cancelling…";
    let asked = false;
    try {
      const response = await fetch($("job").dataset.cancelUrl, {
        method: "POST", headers: cancelToken ? { Authorization: `Bearer ${cancelToken}` } : {},
      });
      const body = await response.json();
      asked = response.ok;
      if (response.ok) { if (body.seq > job.seq) record(body); }
      else $("message").textContent = body.error ? body.error.message : "could not cancel";
    } catch (e) {
      $("message").textContent = "could not reach the server to cancel";
    }
    if (!asked) { button.disabled = false; button.textContent = "Cancel"; }
  });

  if ("Notification" in window && Notification.permission === "default") {
    $("notify").hidden = FINAL.has(job.state);
    $("notify").addEventListener("click", async () => {
      await Notification.requestPermission();
      $("notify").hidden = true;
    });
  }

  show(job);
  setInterval(tick, 1000);
})();
