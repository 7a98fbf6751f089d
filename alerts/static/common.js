"use strict";
// Shared by the console pages: the API client (CSRF), the live feed with reconnect and
// catch-up, and the timeline plot. Plain JS, no external assets.

const CW = {me: null};

CW.api = async function (path, options = {}) {
  const opts = {credentials: "same-origin", ...options};
  opts.headers = {...(options.headers || {})};
  if (opts.method && opts.method !== "GET") {
    opts.headers["X-CSRF-Token"] = CW.me ? CW.me.csrf : "";
    if (opts.body !== undefined && !opts.headers["Content-Type"]) {
      opts.headers["Content-Type"] = "application/json";
    }
  }
  const resp = await fetch(path, opts);
  if (resp.status === 401) {
    window.location.assign("/login");
    throw new Error("login required");
  }
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
};

CW.init = async function () {
  CW.me = await CW.api("/api/me");
  const user = document.getElementById("user");
  if (user) user.textContent = `${CW.me.name} (${CW.me.role})`;
  const logout = document.getElementById("logout");
  if (logout) {
    logout.addEventListener("click", async () => {
      await CW.api("/logout", {method: "POST"}).catch(() => {});
      window.location.assign("/login");
    });
  }
  return CW.me;
};

CW.fmtScore = (s) => (s === null || s === undefined ? "–" : s.toFixed(2));
CW.fmtDuration = function (s) {
  s = Math.max(0, Math.floor(s));
  const m = Math.floor(s / 60), sec = String(s % 60).padStart(2, "0");
  return `${m}:${sec}`;
};
CW.el = function (tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
};

// The live feed. `onSnapshot()` is awaited on first connect and after any gap the server
// cannot fill exactly (it reloads state and returns the feed cursor); `onEvents(list)`
// gets every event once (duplicates from a store catch-up are dropped here).
CW.LiveFeed = class {
  constructor(onEvents, onSnapshot, onState) {
    this.onEvents = onEvents;
    this.onSnapshot = onSnapshot;
    this.onState = onState || (() => {});
    this.cursor = null;
    this.boot = "";
    this.lastTs = "";
    this.seen = new Map();  // dedupe keys of recent events
    this.delay = 500;
    this.ws = null;
  }
  async start() {
    const snap = await this.onSnapshot();
    this.cursor = snap.cursor;
    this.boot = snap.boot;
    this.connect();
  }
  url() {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    const q = new URLSearchParams();
    if (this.cursor !== null) q.set("after", this.cursor);
    if (this.boot) q.set("boot", this.boot);
    if (this.lastTs) q.set("since", this.lastTs);
    return `${proto}//${window.location.host}/api/live?${q}`;
  }
  connect() {
    this.onState("connecting");
    const ws = new WebSocket(this.url());
    this.ws = ws;
    ws.onopen = () => { this.delay = 500; this.onState("live"); };
    ws.onmessage = (m) => this.message(JSON.parse(m.data));
    ws.onclose = () => {
      this.onState("reconnecting");
      const wait = this.delay;
      this.delay = Math.min(this.delay * 2, 10000);
      setTimeout(() => this.connect(), wait);
    };
  }
  async message(data) {
    if (!Array.isArray(data)) {
      if (data.type === "hello") {
        this.boot = data.boot;
        if (data.resync) {
          const snap = await this.onSnapshot();
          this.boot = snap.boot;
        }
        this.cursor = data.cursor;
      }
      return;
    }
    const fresh = [];
    for (const e of data) {
      if (e.seq !== undefined && e.seq > this.cursor) this.cursor = e.seq;
      if (e.type !== "participant.score" && e.ts > this.lastTs) this.lastTs = e.ts;
      const key = `${e.type}|${e.call_id}|${e.participant_id || ""}|${e.alert_id || ""}|${e.ts}`;
      if (this.seen.has(key)) continue;
      this.seen.set(key, true);
      fresh.push(e);
    }
    while (this.seen.size > 50000) this.seen.delete(this.seen.keys().next().value);
    if (fresh.length) this.onEvents(fresh);
  }
};

// Draw a participant's score timeline: speech regions (shaded), window scores (line and
// dots), the suspect and synthetic thresholds (dashed), verdict changes (ticks).
CW.drawTimeline = function (canvas, data) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, padL = 34, padB = 20, padT = 8, padR = 8;
  ctx.clearRect(0, 0, w, h);
  ctx.fillStyle = "#10151c";
  ctx.fillRect(0, 0, w, h);
  const spans = data.windows.length
    ? data.windows.map((x) => [x.start_s, x.end_s, x.score])
    : data.points.map((p) => [Math.max(0, p.media_s - data.window_s), p.media_s, p.score]);
  const tMax = Math.max(10, ...spans.map((s) => s[1]));
  const tMin = Math.max(0, tMax - 300);
  const x = (t) => padL + ((t - tMin) / (tMax - tMin)) * (w - padL - padR);
  const y = (s) => padT + (1 - s) * (h - padT - padB);
  ctx.fillStyle = "rgba(120,160,220,0.18)";
  for (const [a, b] of spans) if (b >= tMin) ctx.fillRect(x(Math.max(a, tMin)), padT, x(b) - x(Math.max(a, tMin)), h - padT - padB);
  ctx.strokeStyle = "#556"; ctx.lineWidth = 1; ctx.fillStyle = "#99a"; ctx.font = "11px sans-serif";
  for (const s of [0, 0.5, 1]) { ctx.beginPath(); ctx.moveTo(padL, y(s)); ctx.lineTo(w - padR, y(s)); ctx.stroke(); ctx.fillText(s.toFixed(1), 4, y(s) + 4); }
  ctx.fillText(`${tMin.toFixed(0)} s`, padL, h - 5);
  ctx.fillText(`${tMax.toFixed(0)} s`, w - padR - 40, h - 5);
  const th = data.thresholds || {};
  for (const [val, colour] of [[th.suspect, "#e0a800"], [th.synthetic, "#ff3b3b"]]) {
    if (val === undefined || val === null) continue;
    ctx.setLineDash([6, 4]); ctx.strokeStyle = colour; ctx.lineWidth = 1.5;
    ctx.beginPath(); ctx.moveTo(padL, y(val)); ctx.lineTo(w - padR, y(val)); ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.strokeStyle = "#e8eef5"; ctx.lineWidth = 1.5; ctx.beginPath();
  const pts = spans.filter((s) => s[1] >= tMin);
  pts.forEach(([, b, s], i) => (i ? ctx.lineTo(x(b), y(s)) : ctx.moveTo(x(b), y(s))));
  ctx.stroke();
  for (const [, b, s] of pts) {
    ctx.fillStyle = th.synthetic !== undefined && s >= th.synthetic ? "#ff3b3b" : th.suspect !== undefined && s >= th.suspect ? "#e0a800" : "#7fd18b";
    ctx.beginPath(); ctx.arc(x(b), y(s), 2.5, 0, 2 * Math.PI); ctx.fill();
  }
  for (const v of data.verdict_changes || []) {
    if (v.media_s === null || v.media_s < tMin) continue;
    ctx.fillStyle = v.verdict === "synthetic" ? "#ff3b3b" : "#bbb";
    ctx.fillRect(x(v.media_s) - 1, padT, 2, 8);
  }
  canvas.dataset.points = String(spans.length);
};
