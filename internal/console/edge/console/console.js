// Tributary edge console: polls the edge's own HTTP API and renders it.
// Plain JS with the helpers of common.js, no dependencies, no build step.
"use strict";

const prev = { streams: new Map(), cursors: new Map(), t: 0 };

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  return { ok: r.ok, status: r.status, body: await r.json() };
}
function render(health, status, streams, bridge, now, dt) {
  $("identity").textContent = `${status.edge_id} · up ${Math.round(status.uptime_seconds)} s · bridge ${status.bridge}`;
  $("health").dataset.status = health.status;
  $("health").textContent = health.status;
  $("reasons").hidden = health.reasons.length === 0;
  $("reasons").textContent = health.reasons.join("\n");

  const names = streams.filter((s) => !s.stream.endsWith(".dlq")).map((s) => s.stream);
  fill("streams", streams.map((s) => {
    const before = prev.streams.get(s.stream);
    const end = s.partitions.reduce((a, p) => a + p.end_offset, 0);
    const rate = dt > 0 && before !== undefined ? Math.max(0, (end - before) / dt) : null;
    prev.streams.set(s.stream, end);
    return el("tr", { "data-stream": s.stream }, td(s.stream), td(s.partitions.length), td(fmtNum(s.records), "n"), td(fmtRate(rate), "n"), td(fmtBytes(s.bytes), "n"));
  }), 5, "no streams yet");

  const refused = Object.values(status.refused || {}).reduce((a, b) => a + b, 0);
  const disk = status.budget_bytes ? `${fmtBytes(status.log_bytes)} of ${fmtBytes(status.budget_bytes)} (${status.budget_policy})` : fmtBytes(status.log_bytes);
  fill("ingest", [["Readings appended", fmtNum(status.appended)], ["Dead letters (kept in <stream>.dlq)", fmtNum(status.dead_letters)],
    ["Publishes refused", fmtNum(refused)], ["Dropped by the disk budget", fmtNum(status.dropped)], ["Duplicates dropped", fmtNum(status.duplicates)],
    ["Disk", disk], ["Damaged ranges", fmtNum(status.damaged_ranges)]].map(([k, v]) => el("tr", {}, td(k), td(v, "n"))), 2, "");

  const parts = bridge && Array.isArray(bridge.partitions) ? bridge.partitions : [];
  fill("bridge", parts.map((p) => {
    const key = p.stream + "/" + p.partition;
    const before = prev.cursors.get(key);
    const rate = dt > 0 && before !== undefined ? Math.max(0, (p.cursor - before) / dt) : null;
    prev.cursors.set(key, p.cursor);
    return el("tr", { "data-bridge": key }, td(key), td(p.core_topic + (p.core_partition >= 0 ? "/" + p.core_partition : "")), td(fmtNum(p.cursor), "n"),
      td(fmtNum(p.backlog_records), "n"), td(fmtRate(rate), "n"), td(p.backlog_records ? fmtAge(p.last_ack_age) : "caught up", "n"),
      td(p.backlog_records ? fmtAge(p.oldest_unforwarded_age || 0) : "–", "n"), td(p.last_error || ""));
  }), 8, bridge ? "nothing to forward yet" : "bridge off: no bridge.brokers configured");
  prev.t = now;

  choice.topic = setOptions($("topic"), names, choice.topic);
}

function renderChart(records) {
  const devices = [...new Set(records.map((r) => r.key).filter((k) => k))].sort();
  choice.device = setOptions($("device"), devices, choice.device);
  const mine = records.filter((r) => r.key === choice.device).map((r) => ({ t: Date.parse(r.timestamp), f: numericFields(r.value) }));
  const fields = mine.length ? Object.keys(mine[mine.length - 1].f) : [];
  choice.field = setOptions($("field"), fields, choice.field || fields.find((f) => /^temp/i.test(f)));
  const data = mine.filter((p) => typeof p.f[choice.field] === "number").map((p) => ({ t: p.t, v: p.f[choice.field] }));
  drawChart(data);
}

async function tick() {
  try {
    const [h, s, st, b] = await Promise.all([getJSON("../healthz"), getJSON("../api/v1/status"), getJSON("../api/v1/streams"), getJSON("../api/v1/bridge")]);
    const now = Date.now() / 1000;
    render(h.body, s.body, st.body, b.ok ? b.body : null, now, prev.t ? now - prev.t : 0);
    if (choice.topic) {
      const tail = await getJSON("../api/v1/tail?" + new URLSearchParams({ stream: choice.topic, n: "1000" }));
      if (tail.ok) renderChart(tail.body);
    }
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (err) {
    $("health").dataset.status = "unknown";
    $("health").textContent = "unreachable";
    $("updated").textContent = String(err);
  }
}
$("topic").addEventListener("change", (e) => { choice.topic = e.target.value; choice.device = ""; choice.field = ""; tick(); });
$("device").addEventListener("change", (e) => { choice.device = e.target.value; tick(); });
$("field").addEventListener("change", (e) => { choice.field = e.target.value; tick(); });
async function loop() { await tick(); setTimeout(loop, POLL_MS); }
loop();
