// Tributary edge console: polls the edge's own HTTP API and renders it.
// Plain JS, no dependencies, no build step.
"use strict";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
const prev = { streams: new Map(), cursors: new Map(), t: 0 };
const choice = { topic: "", device: "", field: "" };

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}
function td(v, cls) { return el("td", cls ? { class: cls } : {}, v); }
function fmtNum(n) { return Number(n).toLocaleString("en-US"); }
function fmtRate(r) { return r === null ? "–" : r < 10 ? r.toFixed(1) : Math.round(r).toLocaleString("en-US"); }
function fmtBytes(b) {
  const u = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return (i ? b.toFixed(1).replace(/\.0$/, "") : b) + " " + u[i];
}
function fmtAge(ns) {
  const s = ns / 1e9;
  if (!s) return "–";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function fill(id, rows, cols, empty) {
  $(id).tBodies[0].replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: cols }, empty))]));
}
async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  return { ok: r.ok, status: r.status, body: await r.json() };
}
function setOptions(sel, values, current) {
  if (sel.options.length !== values.length || values.some((v, i) => sel.options[i].value !== v)) {
    sel.replaceChildren(...values.map((v) => el("option", { value: v }, v)));
  }
  const pick = values.includes(current) ? current : values[0] || "";
  sel.value = pick;
  return pick;
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

function numericFields(v) {
  const out = {};
  const skip = new Set(["seq", "ts", "time", "timestamp", "bdSeq"]);
  if (Array.isArray(v)) {
    for (const r of v) if (r && typeof r === "object" && typeof (r.v ?? r.value) === "number") out[r.n ?? r.name] = r.v ?? r.value;
  } else if (v && typeof v === "object") {
    if (Array.isArray(v.metrics)) return numericFields(v.metrics);
    for (const [k, x] of Object.entries(v)) if (typeof x === "number" && !skip.has(k)) out[k] = x;
  }
  return out;
}
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function renderChart(records) {
  const devices = [...new Set(records.map((r) => r.key).filter((k) => k))].sort();
  choice.device = setOptions($("device"), devices, choice.device);
  const mine = records.filter((r) => r.key === choice.device).map((r) => ({ t: Date.parse(r.timestamp), f: numericFields(r.value) }));
  const fields = mine.length ? Object.keys(mine[mine.length - 1].f) : [];
  choice.field = setOptions($("field"), fields, choice.field || fields.find((f) => /^temp/i.test(f)));
  const data = mine.filter((p) => typeof p.f[choice.field] === "number").map((p) => ({ t: p.t, v: p.f[choice.field] }));
  const chart = $("chart");
  const W = 1200, H = 260, L = 60, R = 16, T = 14, B = 28;
  chart.replaceChildren();
  chart.dataset.points = String(data.length);
  if (!data.length) {
    chart.append(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "none" }, "no readings for this choice yet"));
    $("latest").textContent = "";
    return;
  }
  let t0 = Math.min(...data.map((d) => d.t)), t1 = Math.max(...data.map((d) => d.t));
  let v0 = Math.min(...data.map((d) => d.v)), v1 = Math.max(...data.map((d) => d.v));
  if (t1 === t0) t1 = t0 + 1;
  if (v1 === v0) { v0 -= 1; v1 += 1; }
  const pad = (v1 - v0) * 0.08; v0 -= pad; v1 += pad;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - v0) / (v1 - v0)) * (H - T - B);
  for (let i = 0; i <= 4; i++) {
    const v = v0 + ((v1 - v0) * i) / 4;
    chart.append(svg("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    chart.append(svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "axis" }, v.toFixed(1)));
  }
  const fmtT = (t) => new Date(t).toISOString().slice(11, t1 - t0 < 10000 ? 23 : 19);
  chart.append(svg("text", { x: L, y: H - 8, class: "axis" }, fmtT(t0) + " UTC"));
  chart.append(svg("text", { x: W - R, y: H - 8, "text-anchor": "end", class: "axis" }, fmtT(t1) + " UTC"));
  chart.append(svg("path", { d: data.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1)).join(" "), class: "line", id: "line" }));
  const last = data[data.length - 1];
  chart.append(svg("circle", { cx: x(last.t), cy: y(last.v), r: 4, class: "dot" }));
  $("latest").textContent = `${choice.device} ${choice.field} ${last.v}`;
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
