"use strict";
// History: stored calls filtered by line, verdict and time; click a participant for its
// score timeline and the call's alerts with who did what.

function isoOrEmpty(value) {
  return value ? new Date(value + "Z").toISOString() : "";
}

async function load() {
  const q = new URLSearchParams();
  const line = document.getElementById("f-line").value.trim();
  const verdict = document.getElementById("f-verdict").value;
  const since = isoOrEmpty(document.getElementById("f-since").value);
  const until = isoOrEmpty(document.getElementById("f-until").value);
  if (line) q.set("line", line);
  if (verdict) q.set("verdict", verdict);
  if (since) q.set("since", since);
  if (until) q.set("until", until);
  const data = await CW.api(`/api/history/calls?${q}`);
  const frag = document.createDocumentFragment();
  for (const c of data.calls) {
    const tr = CW.el("tr", {"class": `v-${c.verdict}`, "data-call-id": c.call_id});
    tr.appendChild(CW.el("td", {}, c.verdict === "synthetic" ? "⚠ SYNTHETIC" : c.verdict.toUpperCase()));
    tr.appendChild(CW.el("td", {}, c.started.replace("T", " ").slice(0, 19)));
    tr.appendChild(CW.el("td", {}, c.line || "–"));
    tr.appendChild(CW.el("td", {}, c.ingress || ""));
    const td = CW.el("td");
    for (const p of c.participants) {
      const b = CW.el("button", {"type": "button", "class": `small v-${p.verdict}`}, `${p.label || p.participant_id} (${p.verdict})`);
      b.addEventListener("click", () => show(c.call_id, p.participant_id));
      td.appendChild(b);
    }
    tr.appendChild(td);
    tr.appendChild(CW.el("td", {}, CW.fmtScore(c.max_score)));
    tr.appendChild(CW.el("td", {}, c.media_s === null ? "live" : CW.fmtDuration(c.media_s)));
    tr.appendChild(CW.el("td", {"class": "call-id", "title": c.call_id}, c.call_id));
    frag.appendChild(tr);
  }
  document.getElementById("history-body").replaceChildren(frag);
}

async function show(callId, participantId) {
  const [data, call] = await Promise.all([
    CW.api(`/api/calls/${encodeURIComponent(callId)}/participants/${encodeURIComponent(participantId)}/timeline`),
    CW.api(`/api/history/calls/${encodeURIComponent(callId)}`),
  ]);
  document.getElementById("timeline-panel").hidden = false;
  document.getElementById("timeline-title").textContent = `${participantId} · ${callId}`;
  CW.drawTimeline(document.getElementById("timeline"), data);
  const ul = document.getElementById("call-alerts");
  const frag = document.createDocumentFragment();
  for (const a of call.alerts) {
    const li = CW.el("li", {"class": `alert s-${a.status}`, "data-alert-id": a.alert_id}, `alert ${a.ts.slice(0, 19)} · ${a.participant_id} · score ${CW.fmtScore(a.score)} · ${a.status}`);
    for (const x of a.actions) li.appendChild(CW.el("div", {"class": "alert-action"}, `${x.action} by ${x.user} at ${x.ts.slice(0, 19)}${x.reason ? ": " + x.reason : ""}${x.note ? ": " + x.note : ""}`));
    frag.appendChild(li);
  }
  ul.replaceChildren(frag);
}

async function main() {
  await CW.init();
  document.getElementById("filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(); });
  await load();
}

main();
