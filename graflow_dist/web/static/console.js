// graflow-dist console: live updates (server-sent events) and actions (POST with the
// CSRF double-submit header). No framework, no build step.
"use strict";

const STATES = ["pending", "ready", "running", "waiting", "done", "failed", "retrying",
  "dead_lettered"];

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)gf_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

async function post(url, body) {
  const res = await fetch(url, {
    method: "POST", credentials: "same-origin",
    headers: {"content-type": "application/json", "x-csrf-token": csrfToken()},
    body: JSON.stringify(body || {}),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

async function del(url) {
  const res = await fetch(url, {
    method: "DELETE", credentials: "same-origin", headers: {"x-csrf-token": csrfToken()},
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.error || `HTTP ${res.status}`);
  return data;
}

function flash(text, kind) {
  const box = document.getElementById("flash");
  if (!box) return;
  box.textContent = text;
  box.className = "flash " + (kind || "ok");
  box.hidden = false;
  clearTimeout(flash.timer);
  flash.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

// h("td", {class: "mono"}, "text", child, ...): an element, text escaped.
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function seconds(v) {
  if (v === null || v === undefined) return "-";
  if (v < 1) return (v * 1000).toFixed(1) + " ms";
  if (v < 120) return v.toFixed(2) + " s";
  return (v / 60).toFixed(1) + " min";
}

function when(epoch) {
  if (!epoch) return "-";
  return new Date(epoch * 1000).toISOString().replace("T", " ").slice(0, 19);
}

function live(url, onUpdate) {
  const dot = document.getElementById("live-indicator");
  const source = new EventSource(url);
  source.addEventListener("update", (e) => {
    if (dot) dot.classList.add("on");
    onUpdate(JSON.parse(e.data));
  });
  source.addEventListener("error", (e) => {
    if (dot) dot.classList.remove("on");
    if (e.data) flash(JSON.parse(e.data).error, "bad");
  });
  return source;
}

function statusBadge(status) {
  return h("span", {class: "badge status-" + status}, status);
}

// --- runs ------------------------------------------------------------------------

function initRuns() {
  const table = document.getElementById("runs-table");
  const tbody = table.querySelector("tbody");
  const bulk = document.getElementById("bulk-cancel");
  const count = document.getElementById("selection-count");
  const picked = new Set();

  function refreshSelection() {
    bulk.disabled = picked.size === 0;
    count.textContent = picked.size ? `${picked.size} selected` : "";
  }
  tbody.addEventListener("change", (e) => {
    if (!e.target.classList.contains("pick")) return;
    if (e.target.checked) picked.add(e.target.value); else picked.delete(e.target.value);
    refreshSelection();
  });
  document.getElementById("select-all").addEventListener("change", (e) => {
    for (const box of tbody.querySelectorAll("input.pick:not([disabled])")) {
      box.checked = e.target.checked;
      if (box.checked) picked.add(box.value); else picked.delete(box.value);
    }
    refreshSelection();
  });
  bulk.addEventListener("click", async () => {
    const sessions = [...picked];
    if (!sessions.length) return;
    try {
      const out = await post("/api/runs/cancel", {sessions});
      const skipped = Object.keys(out.skipped || {}).length;
      flash(`cancellation requested for ${out.cancelled.length} run(s)` +
            (skipped ? `, ${skipped} skipped` : ""), "ok");
      picked.clear();
      refreshSelection();
    } catch (err) { flash(err.message, "bad"); }
  });

  function row(r) {
    const p = r.progress;
    const extra = (p.running ? ` · ${p.running} running` : "") + (p.failed ? ` · ${p.failed} failed` : "");
    const box = h("input", {type: "checkbox", class: "pick", value: r.session_id,
      disabled: r.finished, checked: picked.has(r.session_id)});
    return h("tr", {dataset: {session: r.session_id}},
      h("td", {}, box),
      h("td", {}, h("a", {class: "mono", href: "/runs/" + encodeURIComponent(r.session_id)}, r.session_id)),
      h("td", {}, r.workflow || "-"),
      h("td", {}, statusBadge(r.status)),
      h("td", {class: "progress-cell"}, h("progress", {max: p.total || 1, value: p.done}),
        h("span", {class: "muted"}, ` ${p.done}/${p.total}${extra}`)),
      h("td", {}, when(r.submitted_at)),
      h("td", {}, seconds(r.elapsed_s)));
  }
  live("/api/runs/stream?" + table.dataset.query, (data) => {
    for (const r of data.runs) if (r.finished) picked.delete(r.session_id);
    const rows = data.runs.length ? data.runs.map(row)
      : [h("tr", {class: "empty"}, h("td", {colspan: 7}, "no runs"))];
    tbody.replaceChildren(...rows);
    refreshSelection();
  });
}

// --- one run ---------------------------------------------------------------------

function initRun() {
  const head = document.getElementById("run-head");
  const sid = head.dataset.session;
  const api = "/api/runs/" + encodeURIComponent(sid);
  let finished = !!document.getElementById("cancel-run").hidden;
  let lastCheckpoint;

  document.getElementById("cancel-run").addEventListener("click", async () => {
    try { await post(api + "/cancel", {}); flash("cancellation requested", "ok"); }
    catch (err) { flash(err.message, "bad"); }
  });
  document.getElementById("tasks-table").addEventListener("click", async (e) => {
    const button = e.target.closest("button.retry");
    if (!button) return;
    button.disabled = true;
    try {
      await post(api + "/retry", {task_id: button.dataset.task});
      flash(`task ${button.dataset.task} retried`, "ok");
    } catch (err) { flash(err.message, "bad"); button.disabled = false; }
  });
  document.getElementById("checkpoints-table").addEventListener("click", async (e) => {
    const button = e.target.closest("button.resume");
    if (!button) return;
    button.disabled = true;
    try {
      await post(api + "/resume", {checkpoint: button.dataset.path});
      flash("resumed from " + button.dataset.path, "ok");
    } catch (err) { flash(err.message, "bad"); button.disabled = false; }
  });

  async function loadCheckpoints() {
    const tbody = document.querySelector("#checkpoints-table tbody");
    try {
      const res = await fetch(api + "/checkpoints", {credentials: "same-origin"});
      const data = await res.json();
      const rows = (data.checkpoints || []).map((c) => h("tr", {dataset: {path: c.path}},
        h("td", {}, c.created_at.replace("T", " ").slice(0, 19)),
        h("td", {}, c.steps),
        h("td", {class: "mono path"}, c.path, c.last ? h("span", {class: "muted"}, " (last)") : null),
        h("td", {class: "mono"}, JSON.stringify(c.user_metadata)),
        h("td", {}, h("button", {class: "resume", "data-path": c.path, disabled: !finished,
          title: finished ? "resume the run from here" : "cancel the run first"}, "Resume"))));
      tbody.replaceChildren(...(rows.length ? rows
        : [h("tr", {class: "empty"}, h("td", {colspan: 5}, "no checkpoints"))]));
    } catch (err) { flash("checkpoints: " + err.message, "bad"); }
  }

  function recolour(states) {
    const svg = document.querySelector("#graph svg");
    let missing = false;
    for (const [node, state] of Object.entries(states)) {
      const el = svg && [...svg.querySelectorAll("[data-node-id]")]
        .find((n) => n.dataset.nodeId === node);
      if (!el) { missing = true; continue; }
      for (const s of STATES) el.classList.remove("gf-state-" + s);
      el.classList.add("gf-state-" + state);
    }
    return missing;
  }

  async function redraw() {  // a task was added while the run ran: draw the graph anew
    const res = await fetch(api + "/graph.svg", {credentials: "same-origin"});
    if (res.ok) document.getElementById("graph").innerHTML = await res.text();
  }

  function taskRow(tid, t) {
    const worker = (t.running_on || (t.worker ? [t.worker] : [])).join(", ") || "-";
    let detail = "-";
    if (t.error) {
      detail = h("details", {}, h("summary", {class: "err"}, `${t.error_type || "error"}: ${t.error}`),
        h("pre", {}, t.traceback || ""));
    } else if (t.preview) detail = h("code", {}, t.preview);
    return h("tr", {dataset: {task: tid}},
      h("td", {class: "mono"}, tid),
      h("td", {}, h("span", {class: "badge state-" + t.state}, t.state)),
      h("td", {}, t.attempts || "-", t.cycle ? h("span", {class: "muted"}, ` (cycle ${t.cycle})`) : null),
      h("td", {class: "mono"}, worker),
      h("td", {}, seconds(t.queue_wait_s)),
      h("td", {}, t.duration_s ? seconds(t.duration_s) : "-"),
      h("td", {class: "detail"}, detail),
      h("td", {}, t.retryable ? h("button", {class: "retry", "data-task": tid}, "Retry") : null));
  }

  live(api + "/stream", async (data) => {
    const r = data.run;
    const status = document.getElementById("run-status");
    status.replaceWith(Object.assign(statusBadge(r.status), {id: "run-status"}));
    const p = r.progress;
    document.getElementById("run-progress").textContent =
      `${p.done}/${p.total} done · ${p.running} running · ${p.failed} failed · ${r.steps} steps`;
    const error = document.getElementById("run-error");
    error.hidden = !r.error;
    error.textContent = r.error ? `${r.error_type || ""}: ${r.error}` : "";
    const checkpointError = document.getElementById("checkpoint-error");
    checkpointError.hidden = !r.checkpoint_error;
    checkpointError.textContent = r.checkpoint_error ? `checkpoint failed: ${r.checkpoint_error}` : "";
    document.getElementById("cancel-run").hidden = r.finished;
    if (r.finished !== finished || r.last_checkpoint !== lastCheckpoint) {
      finished = r.finished;
      lastCheckpoint = r.last_checkpoint;
      loadCheckpoints();
    }
    if (recolour(data.states)) { await redraw(); recolour(data.states); }
    const open = new Set([...document.querySelectorAll("#tasks-table details[open]")]
      .map((d) => d.closest("tr").dataset.task));
    const rows = Object.entries(data.tasks).map(([tid, t]) => taskRow(tid, t));
    for (const row of rows) if (open.has(row.dataset.task)) row.querySelector("details")?.setAttribute("open", "");
    document.querySelector("#tasks-table tbody").replaceChildren(...rows);
  });
  loadCheckpoints();
}

// --- workers ---------------------------------------------------------------------

function initWorkers() {
  live("/api/workers/stream", (data) => {
    const warning = document.getElementById("redis-warning");
    warning.hidden = !data.redis_warning;
    warning.textContent = data.redis_warning || "";
    const workers = data.workers.map((w) => h("tr", {dataset: {worker: w.name}, class: w.live ? null : "stale"},
      h("td", {class: "mono"}, w.name),
      h("td", {}, seconds(w.heartbeat_age_s) + " ago",
        w.live ? null : h("span", {class: "badge status-failed"}, "lost")),
      h("td", {}, w.rq_state || "-"),
      h("td", {class: "mono"}, w.current_tasks.length ? w.current_tasks.join(", ") : "-"),
      h("td", {}, w.tasks_done), h("td", {}, w.tasks_failed),
      h("td", {}, w.throughput_per_s === null ? "-" : w.throughput_per_s.toFixed(1) + "/s"),
      h("td", {}, seconds(w.uptime_s))));
    document.querySelector("#workers-table tbody").replaceChildren(...(workers.length ? workers
      : [h("tr", {class: "empty"}, h("td", {colspan: 8}, "no workers registered"))]));
    document.querySelector("#queues-table tbody").replaceChildren(...data.queues.map((q) =>
      h("tr", {}, h("td", {class: "mono"}, q.name), h("td", {}, q.depth),
        h("td", {}, seconds(q.oldest_wait_s)), h("td", {}, data.running_jobs))));
    const c = data.coordinators;
    document.querySelector("#coordinators-table tbody").replaceChildren(...c.coordinators.map((x) =>
      h("tr", {}, h("td", {class: "mono"}, x.id),
        h("td", {}, x.leader ? [h("span", {class: "badge status-running"}, "leader"),
          h("span", {class: "muted"}, ` epoch ${c.epoch}`)] : (x.live ? "standby" : "gone")),
        h("td", {}, seconds(x.last_seen_age_s) + " ago"))));
  });
}

function initLogin() {
  const field = document.getElementById("csrf-field");
  if (field && !field.value) field.value = csrfToken();
}

// The answer a feedback form gives, in the API's fields.
function feedbackAnswer(form, submitter) {
  const data = new FormData(form);
  const body = {};
  const by = (data.get("responded_by") || "").trim();
  if (by) body.responded_by = by;
  const type = form.closest("[data-type]").dataset.type;
  if (type === "approval") {
    body.approved = submitter && submitter.value === "true";
    const reason = (data.get("reason") || "").trim();
    if (reason) body.reason = reason;
  } else if (type === "text") body.text = data.get("text");
  else if (type === "selection") body.selected = data.get("selected");
  else if (type === "multi_selection") body.selected_multiple = data.getAll("selected_multiple");
  else body.custom_data = JSON.parse(data.get("custom_data") || "{}");
  return body;
}

function initFeedback() {
  const list = document.getElementById("feedback-list");
  list.addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = e.target;
    const id = form.dataset.feedback;
    try {
      await post(`/api/feedback/${encodeURIComponent(id)}/respond`,
                 feedbackAnswer(form, e.submitter));
      flash(`answered ${id}: the task continues`, "ok");
      form.closest(".card").classList.add("answered");
      form.replaceWith(h("p", {class: "muted"}, "answered"));
    } catch (err) { flash(String(err.message || err), "error"); }
  });
  list.addEventListener("click", async (e) => {
    if (!e.target.classList.contains("cancel-request")) return;
    const id = e.target.closest("form").dataset.feedback;
    try {
      await del(`/api/feedback/${encodeURIComponent(id)}`);
      flash(`cancelled ${id}`, "ok");
      e.target.closest(".card").remove();
    } catch (err) { flash(String(err.message || err), "error"); }
  });
  if (list.dataset.single) return;
  // New questions appear without a reload: reload the list when the open set changes.
  const shown = new Set([...list.querySelectorAll(".card")].map((c) => c.dataset.feedback));
  const source = new EventSource("/api/feedback/stream");
  source.addEventListener("update", (ev) => {
    const ids = JSON.parse(ev.data).requests.map((r) => r.feedback_id);
    const fresh = ids.some((id) => !shown.has(id));
    const focused = list.contains(document.activeElement);
    if (fresh && !focused) window.location.reload();
  });
}

const INIT = {runs: initRuns, run: initRun, workers: initWorkers, login: initLogin,
  feedback: initFeedback};
document.addEventListener("DOMContentLoaded", () => {
  const init = INIT[document.body.dataset.page];
  if (init) init();
});
