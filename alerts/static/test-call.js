"use strict";
// Test call: microphone -> RTCPeerConnection -> WHIP offer (authorised by the console
// session and its CSRF token) -> live score of the caller's own voice from the feed.

let pc = null, location_ = null, callId = null, windows = 0;
const data = {windows: [], points: [], thresholds: {}, window_s: 2, verdict_changes: []};

function status(text) { document.getElementById("status").textContent = text; }

function onEvents(events) {
  for (const e of events) {
    if (!callId || e.call_id !== callId) continue;
    if (e.type === "participant.score") {
      windows += 1;
      data.windows.push({start_s: e.media_s - data.window_s, end_s: e.media_s, score: e.score});
      document.getElementById("score").textContent = CW.fmtScore(e.score);
      document.getElementById("windows").textContent = String(windows);
    }
    if (e.verdict) {
      const v = document.getElementById("verdict");
      v.textContent = e.verdict;
      v.className = `v-${e.verdict}`;
    }
    if (e.type === "call.ended") status(`ended (${e.reason || ""})`);
  }
  CW.drawTimeline(document.getElementById("timeline"), data);
}

async function waitIce(conn) {
  if (conn.iceGatheringState === "complete") return;
  await new Promise((resolve) => {
    const done = () => { if (conn.iceGatheringState === "complete") resolve(); };
    conn.addEventListener("icegatheringstatechange", done);
    setTimeout(resolve, 3000);  // host candidates are enough on a LAN
  });
}

async function start() {
  document.getElementById("start").disabled = true;
  status("asking for the microphone");
  try {
    const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: false});
    pc = new RTCPeerConnection();
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    await pc.setLocalDescription(await pc.createOffer());
    await waitIce(pc);
    status("connecting");
    const resp = await fetch("/whip", {
      method: "POST", body: pc.localDescription.sdp, credentials: "same-origin",
      headers: {"Content-Type": "application/sdp", "X-CSRF-Token": CW.me.csrf},
    });
    if (resp.status !== 201) throw new Error(`WHIP answered ${resp.status}`);
    location_ = resp.headers.get("Location");
    await pc.setRemoteDescription({type: "answer", sdp: await resp.text()});
    const session = location_.split("/").pop();
    callId = (await CW.api(`/api/whip/${encodeURIComponent(session)}`)).call_id;
    document.getElementById("call-id").textContent = callId;
    status("live: speak now");
    document.getElementById("stop").disabled = false;
  } catch (e) {
    status(`failed: ${e.message}`);
    document.getElementById("start").disabled = false;
  }
}

async function stop() {
  document.getElementById("stop").disabled = true;
  if (location_) await fetch(location_, {method: "DELETE", credentials: "same-origin", headers: {"X-CSRF-Token": CW.me.csrf}}).catch(() => {});
  if (pc) pc.close();
  pc = null; location_ = null;
  status("hung up");
  document.getElementById("start").disabled = false;
}

async function main() {
  await CW.init();
  data.window_s = CW.me.window_s;
  document.getElementById("start").addEventListener("click", start);
  document.getElementById("stop").addEventListener("click", stop);
  const feed = new CW.LiveFeed(onEvents, () => CW.api("/api/calls"), () => {});
  await feed.start();
}

main();
