"use strict";
// Live console: active calls, alerts with actions, a per-participant timeline.
// Events only change the model; rendering is batched to one pass per animation frame
// (at most every RENDER_MS), rows are reused and cells only written when their text
// changes, and the alert list is rebuilt only when an alert changed (so a button is not
// replaced under the operator's pointer), so 200 busy calls stay cheap.

const RENDER_MS = 200;
const RANK = {listening: 0, human: 1, suspect: 2, synthetic: 3};
const calls = new Map();   // call_id -> {call_id, line, ingress, t0, participants: Map}
const alerts = new Map();  // alert_id -> stored alert dict (+ live updates)
const rows = new Map();    // row key -> <tr>
let rowOrder = "";
let renderPending = false, lastRender = 0;
let alertsDirty = true;    // the alert list and banner need rebuilding
let openTimeline = null;   // {call_id, participant_id, data}
let feed;

function callFrom(c) {
  const parts = new Map();
  for (const p of c.participants || []) parts.set(p.participant_id, {...p});
  return {call_id: c.call_id, line: c.line, ingress: c.ingress, t0: performance.now() / 1000 - (c.duration_s || 0), participants: parts};
}

async function loadSnapshot() {
  const [snap, recent] = await Promise.all([CW.api("/api/calls"), CW.api("/api/alerts?limit=100")]);
  calls.clear();
  for (const c of snap.calls) calls.set(c.call_id, callFrom(c));
  for (const a of recent.alerts) alerts.set(a.alert_id, a);
  alertsDirty = true;
  scheduleRender();
  return snap;
}

function applyEvent(e) {
  const call = calls.get(e.call_id);
  if (e.type.startsWith("alert.")) alertsDirty = true;
  switch (e.type) {
    case "call.started":
      if (!call) calls.set(e.call_id, callFrom({call_id: e.call_id, line: e.line, ingress: e.ingress}));
      break;
    case "call.ended":
      calls.delete(e.call_id);
      break;
    case "participant.joined":
      if (call && !call.participants.has(e.participant_id)) call.participants.set(e.participant_id, {participant_id: e.participant_id, label: e.label || "", verdict: "listening", score: null});
      break;
    case "participant.score":
    case "participant.verdict": {
      const p = call && call.participants.get(e.participant_id);
      if (p) {
        p.verdict = e.verdict;
        if (e.type === "participant.score") p.score = e.score;
      }
      if (e.type === "participant.score") timelinePoint(e);
      break;
    }
    case "alert.raised":
      if (!alerts.has(e.alert_id)) {
        alerts.set(e.alert_id, {alert_id: e.alert_id, call_id: e.call_id, participant_id: e.participant_id, line: e.line, ingress: e.ingress, ts: e.ts, score: e.score, media_s: e.media_s, status: "open", actions: []});
        if (!e.replay) alarm();
      }
      break;
    default:
      if (e.type.startsWith("alert.")) {
        const a = alerts.get(e.alert_id);
        const action = e.type.slice(6);
        if (a && !a.actions.some((x) => x.ts === e.ts && x.action === action)) {
          a.actions.push({action, user: e.user, ts: e.ts, reason: e.reason, note: e.note});
          a.status = action;
        }
      }
  }
}

function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  const wait = Math.max(0, RENDER_MS - (performance.now() - lastRender));
  setTimeout(() => requestAnimationFrame(render), wait);
}

function render() {
  renderPending = false;
  lastRender = performance.now();
  renderCalls();
  if (alertsDirty) {
    alertsDirty = false;
    renderAlerts();
    renderBanner();
  }
  if (openTimeline && openTimeline.data) CW.drawTimeline(document.getElementById("timeline"), openTimeline.data);
}

function rowList() {
  const list = [];
  for (const c of calls.values()) {
    const parts = c.participants.size ? [...c.participants.values()] : [{participant_id: "", label: "", verdict: "listening", score: null}];
    for (const p of parts) list.push({c, p, key: `${c.call_id}\u0000${p.participant_id}`});
  }
  list.sort((a, b) => (RANK[b.p.verdict] || 0) - (RANK[a.p.verdict] || 0) || a.c.t0 - b.c.t0);
  return list;
}

function setCell(td, text) { if (td.textContent !== text) td.textContent = text; }

function renderCalls() {
  const body = document.getElementById("calls-body");
  const list = rowList();
  const now = performance.now() / 1000;
  const keep = new Set();
  for (const {c, p, key} of list) {
    keep.add(key);
    let tr = rows.get(key);
    if (!tr) {
      tr = document.createElement("tr");
      for (let i = 0; i < 7; i++) tr.appendChild(document.createElement("td"));
      tr.lastChild.className = "call-id";
      tr.lastChild.title = c.call_id;  // the cell ends in an ellipsis when the id is long
      tr.dataset.callId = c.call_id;
      tr.dataset.participantId = p.participant_id;
      tr.addEventListener("click", () => showTimeline(tr.dataset.callId, tr.dataset.participantId));
      rows.set(key, tr);
    }
    const verdict = p.verdict || "listening";
    if (tr.dataset.verdict !== verdict) { tr.dataset.verdict = verdict; tr.className = `v-${verdict}`; }
    const cells = tr.children;
    setCell(cells[0], verdict === "synthetic" ? "⚠ SYNTHETIC" : verdict.toUpperCase());
    setCell(cells[1], c.line || "–");
    setCell(cells[2], c.ingress || "");
    setCell(cells[3], p.label || p.participant_id || "–");
    setCell(cells[4], CW.fmtScore(p.score));
    setCell(cells[5], CW.fmtDuration(now - c.t0));
    setCell(cells[6], c.call_id);
  }
  for (const [key, tr] of rows) if (!keep.has(key)) { tr.remove(); rows.delete(key); }
  const order = list.map((r) => r.key).join("\u0001");
  if (order !== rowOrder) {
    const frag = document.createDocumentFragment();
    for (const r of list) frag.appendChild(rows.get(r.key));
    body.appendChild(frag);
    rowOrder = order;
  }
  document.getElementById("call-count").textContent = String(calls.size);
  document.getElementById("no-calls").hidden = calls.size > 0;
}

function alertText(a) {
  return `line ${a.line || "–"} · ${a.participant_id || ""} · score ${CW.fmtScore(a.score)} · ${a.ts.slice(11, 19)} UTC`;
}

function renderAlerts() {
  const ul = document.getElementById("alerts");
  const list = [...alerts.values()].sort((a, b) => (a.status === "open") - (b.status === "open") || a.ts.localeCompare(b.ts)).reverse().slice(0, 100);
  const frag = document.createDocumentFragment();
  for (const a of list) {
    const li = CW.el("li", {"class": `alert s-${a.status}`, "data-alert-id": a.alert_id, "data-status": a.status});
    li.appendChild(CW.el("strong", {}, a.status === "open" ? "SYNTHETIC VOICE" : a.status.toUpperCase()));
    li.appendChild(CW.el("span", {"class": "alert-meta"}, " " + alertText(a)));
    const last = a.actions[a.actions.length - 1];
    if (last) li.appendChild(CW.el("div", {"class": "alert-action"}, `${last.action} by ${last.user} at ${last.ts.slice(11, 19)}${last.reason ? ": " + last.reason : ""}${last.note ? ": " + last.note : ""}`));
    const bar = CW.el("div", {"class": "buttons"});
    const add = (label, cls, fn) => { const b = CW.el("button", {"type": "button", "class": `small ${cls}`}, label); b.addEventListener("click", fn); bar.appendChild(b); };
    add("Timeline", "tl", () => showTimeline(a.call_id, a.participant_id));
    if (a.status === "open") add("Acknowledge", "ack", () => act(a.alert_id, "acknowledge"));
    // Once escalated, dismissing is a supervisor's decision (the server enforces it too).
    const escalated = a.actions.some((x) => x.action === "escalated");
    if (a.status !== "dismissed" && (!escalated || CW.me.role === "supervisor")) {
      add("Dismiss…", "dismiss", () => askAndAct(a.alert_id, "dismiss", "Dismiss as false alarm", "Reason"));
    }
    if (a.status === "open" || a.status === "acknowledged") {
      add("Escalate…", "escalate", () => askAndAct(a.alert_id, "escalate", "Escalate alert", "Note"));
    }
    if (escalated && a.status === "escalated" && CW.me.role !== "supervisor") {
      bar.appendChild(CW.el("span", {"class": "muted awaiting"}, "awaiting a supervisor"));
    }
    li.appendChild(bar);
    frag.appendChild(li);
  }
  ul.replaceChildren(frag);
  document.getElementById("no-alerts").hidden = alerts.size > 0;
}

function renderBanner() {
  const open = [...alerts.values()].filter((a) => a.status === "open");
  const banner = document.getElementById("banner");
  banner.hidden = open.length === 0;
  document.body.classList.toggle("alarm", open.length > 0);
  if (!open.length) return;
  const frag = document.createDocumentFragment();
  frag.appendChild(CW.el("div", {"class": "banner-title"}, `⚠ SYNTHETIC VOICE DETECTED — ${open.length} open alert${open.length > 1 ? "s" : ""}`));
  for (const a of open.slice(0, 3)) {
    const line = CW.el("div", {"class": "banner-line", "data-alert-id": a.alert_id}, alertText(a) + " ");
    const b = CW.el("button", {"type": "button", "class": "small ack"}, "Acknowledge");
    b.addEventListener("click", () => act(a.alert_id, "acknowledge"));
    const t = CW.el("button", {"type": "button", "class": "small tl"}, "Timeline");
    t.addEventListener("click", () => showTimeline(a.call_id, a.participant_id));
    line.append(t, b);
    frag.appendChild(line);
  }
  banner.replaceChildren(frag);
}

async function act(alertId, action, body = {}) {
  try {
    const res = await CW.api(`/api/alerts/${alertId}/${action}`, {method: "POST", body: JSON.stringify(body)});
    applyEvent(res.event);
    scheduleRender();
    return res;
  } catch (e) {
    window.alert(`The action failed: ${e.message}`);
  }
}

function askAndAct(alertId, action, title, label) {
  const dialog = document.getElementById("action-dialog");
  document.getElementById("action-title").textContent = title;
  document.getElementById("action-label").firstChild.textContent = label + " ";
  const text = document.getElementById("action-text");
  text.value = "";
  const form = document.getElementById("action-form");
  form.onsubmit = (ev) => {
    ev.preventDefault();
    dialog.close();
    act(alertId, action, action === "dismiss" ? {reason: text.value} : {note: text.value});
  };
  document.getElementById("action-cancel").onclick = () => dialog.close();
  dialog.showModal();
}

async function showTimeline(callId, participantId) {
  if (!participantId) return;
  openTimeline = {call_id: callId, participant_id: participantId, data: null};
  document.getElementById("timeline-panel").hidden = false;
  document.getElementById("timeline-title").textContent = `${participantId} · ${callId}`;
  try {
    const data = await CW.api(`/api/calls/${encodeURIComponent(callId)}/participants/${encodeURIComponent(participantId)}/timeline`);
    if (openTimeline && openTimeline.call_id === callId) openTimeline.data = data;
  } catch (e) {
    openTimeline.data = {windows: [], points: [], thresholds: {}, window_s: CW.me.window_s};
  }
  scheduleRender();
}

function timelinePoint(e) {
  const t = openTimeline;
  if (!t || !t.data || t.call_id !== e.call_id || t.participant_id !== e.participant_id) return;
  if (t.data.live) t.data.windows.push({start_s: e.media_s - t.data.window_s, end_s: e.media_s, score: e.score});
  else t.data.points.push({media_s: e.media_s, score: e.score});
}

// An audible alarm made with WebAudio (no sound file); off unless the operator turns it on.
function alarm() {
  if (!document.getElementById("sound-toggle").checked) return;
  const ctx = new (window.AudioContext || window.webkitAudioContext)();
  for (let i = 0; i < 3; i++) {
    const osc = ctx.createOscillator(), gain = ctx.createGain();
    osc.frequency.value = 880;
    gain.gain.value = 0.2;
    osc.connect(gain).connect(ctx.destination);
    osc.start(ctx.currentTime + i * 0.4);
    osc.stop(ctx.currentTime + i * 0.4 + 0.25);
  }
}

function setConn(state) {
  const el = document.getElementById("conn");
  el.textContent = state === "live" ? "● live" : state;
  el.className = `conn ${state === "live" ? "conn-up" : "conn-down"}`;
}

async function main() {
  await CW.init();
  const sound = document.getElementById("sound-toggle");
  sound.checked = localStorage.getItem("cw-sound") === "1";
  sound.addEventListener("change", () => localStorage.setItem("cw-sound", sound.checked ? "1" : "0"));
  document.getElementById("timeline-close").addEventListener("click", () => { openTimeline = null; document.getElementById("timeline-panel").hidden = true; });
  feed = new CW.LiveFeed((events) => { events.forEach(applyEvent); scheduleRender(); }, loadSnapshot, setConn);
  await feed.start();
  setInterval(scheduleRender, 1000);  // durations tick
}

main();
