// Tributary core console: polls the console listener's JSON API and
// renders it. Plain JS, no dependencies, no build step.
"use strict";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
const prev = { topics: new Map(), edges: new Map(), t: 0, et: 0 };
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
function pill(text, cls) { return el("span", { class: "pill " + cls }, text); }
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
  const body = $(id).tBodies[0];
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colspan: cols }, empty))]));
}
async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok && r.status !== 404) throw new Error(url + ": HTTP " + r.status);
  return r.json();
}

function renderOverview(o) {
  const now = Date.parse(o.time) / 1000;
  const dt = prev.t ? now - prev.t : 0;
  $("identity").textContent = `cluster ${o.cluster_id} · broker ${o.node_id} · ${o.brokers.filter((b) => b.alive).length} of ${o.brokers.length} brokers alive`;
  const h = $("health");
  h.dataset.status = o.health.status;
  h.textContent = o.health.status + (o.ready.ready ? "" : " · not ready");
  const reasons = o.health.reasons.concat(o.ready.reasons);
  $("reasons").hidden = reasons.length === 0;
  $("reasons").textContent = reasons.join("\n");

  fill("brokers", o.brokers.map((b) => el("tr", {},
    td(b.id + (b.self ? " (this)" : "")), td(b.kafka_addr),
    el("td", {}, pill(b.alive ? "up" : "down", b.alive ? "up" : "down"), b.controller ? " controller" : ""),
    td(fmtNum(b.leads), "n"))), 4, "no brokers");

  const topics = o.topics.filter((t) => !t.internal);
  fill("topics", topics.map((t) => {
    const before = prev.topics.get(t.name);
    const rate = dt > 0 && before !== undefined ? Math.max(0, (t.end_offsets - before) / dt) : null;
    let repl = pill("in sync", "ok");
    if (t.offline) repl = pill(t.offline + " offline", "failing");
    else if (t.under_replicated) repl = pill(t.under_replicated + " under-replicated", "degraded");
    return el("tr", { "data-topic": t.name }, td(t.name), td(t.partitions), td(t.known ? fmtNum(t.records) : "–", "n"),
      td(t.known ? fmtRate(rate) : "–", "n"), td(t.known ? fmtBytes(t.bytes) : "–", "n"), el("td", {}, repl));
  }), 6, "no topics yet");
  prev.topics = new Map(topics.map((t) => [t.name, t.end_offsets]));
  prev.t = now;

  const rows = [];
  for (const g of o.groups) {
    rows.push(el("tr", { "data-group": g.group }, el("td", {}, el("strong", {}, g.group)), td(g.partitions.length + " partitions"), td(""), td(""), td(fmtNum(g.lag), "n")));
    for (const p of g.partitions) {
      rows.push(el("tr", { class: "sub" }, td(""), td(`${p.topic}/${p.partition}`), td(fmtNum(p.committed), "n"),
        td(p.high_watermark < 0 ? "?" : fmtNum(p.high_watermark), "n"), td(p.lag < 0 ? "?" : fmtNum(p.lag), "n")));
    }
  }
  fill("groups", rows, 5, "no consumer groups with committed offsets");

  const sel = $("topic");
  const names = topics.map((t) => t.name);
  if (sel.options.length !== names.length || names.some((n, i) => sel.options[i].value !== n)) {
    sel.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
  }
  if (!choice.topic || !names.includes(choice.topic)) choice.topic = names[0] || "";
  sel.value = choice.topic;
}

function renderEdges(edges) {
  // Rates use the core's clock: the browser's may run on virtual time.
  const now = edges.length ? Date.parse(edges[0].time) / 1000 : 0;
  const dt = prev.et ? now - prev.et : 0;
  const seen = new Map();
  fill("edges", edges.map((e) => {
    const st = e.status || {}, hl = e.health || {}, br = e.bridge || {};
    const parts = Array.isArray(br.partitions) ? br.partitions : [];
    const backlog = parts.reduce((a, p) => a + p.backlog_records, 0);
    const cursor = parts.reduce((a, p) => a + p.cursor, 0);
    const ack = parts.reduce((a, p) => Math.max(a, p.last_ack_age || 0), 0);
    const oldest = parts.reduce((a, p) => Math.max(a, p.oldest_unforwarded_age || 0), 0);
    const before = prev.edges.get(e.url);
    const rate = dt > 0 && before !== undefined ? Math.max(0, (cursor - before) / dt) : null;
    seen.set(e.url, cursor);
    const status = hl.status || (e.error ? "failing" : "unknown");
    const disk = st.budget_bytes ? `${(100 * st.log_bytes / st.budget_bytes).toFixed(1)}% of ${fmtBytes(st.budget_bytes)}` : st.log_bytes !== undefined ? fmtBytes(st.log_bytes) : "–";
    return el("tr", { "data-edge": st.edge_id || e.url, title: e.error || (hl.reasons || []).join("\n") },
      td(st.edge_id || e.url), el("td", {}, pill(status, status)),
      td(parts.length ? fmtNum(backlog) : st.bridge === "off" ? "bridge off" : "–", "n"),
      td(parts.length ? fmtRate(rate) : "–", "n"), td(backlog ? fmtAge(ack) : "caught up", "n"),
      td(backlog ? fmtAge(oldest) : "–", "n"), td(disk, "n"));
  }), 7, "no edges configured (console_edges)");
  prev.edges = seen;
  prev.et = now;
}

// numericFields lists the numbers in a decoded reading: top-level fields of
// an object, SenML records (n, v) and Sparkplug metrics (name, value).
function numericFields(v) {
  const out = {};
  const skip = new Set(["seq", "ts", "time", "timestamp", "bdSeq"]);
  if (Array.isArray(v)) {
    for (const r of v) {
      if (r && typeof r === "object" && typeof (r.v ?? r.value) === "number") out[r.n ?? r.name] = r.v ?? r.value;
    }
  } else if (v && typeof v === "object") {
    if (Array.isArray(v.metrics)) return numericFields(v.metrics);
    for (const [k, x] of Object.entries(v)) if (typeof x === "number" && !skip.has(k)) out[k] = x;
  }
  return out;
}

function setOptions(sel, values, current) {
  if (sel.options.length !== values.length || values.some((v, i) => sel.options[i].value !== v)) {
    sel.replaceChildren(...values.map((v) => el("option", { value: v }, v)));
  }
  const pick = values.includes(current) ? current : values[0] || "";
  sel.value = pick;
  return pick;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderChart(res) {
  choice.device = setOptions($("device"), res.devices, choice.device);
  const pts = [];
  let fields = [];
  for (const r of res.readings) {
    const f = numericFields(r.value);
    fields = Object.keys(f);
    if (choice.field in f || !choice.field) pts.push({ t: Date.parse(r.timestamp), f });
  }
  const preferred = fields.find((f) => /^temp/i.test(f));
  choice.field = setOptions($("field"), fields, choice.field || preferred);
  const data = pts.filter((p) => typeof p.f[choice.field] === "number").map((p) => ({ t: p.t, v: p.f[choice.field] }));
  const chart = $("chart");
  const W = 1200, H = 260, L = 60, R = 16, T = 14, B = 28;
  chart.replaceChildren();
  chart.dataset.points = String(data.length);
  chart.dataset.device = choice.device;
  chart.dataset.field = choice.field;
  if (data.length === 0) {
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
  const d = data.map((p, i) => (i ? "L" : "M") + x(p.t).toFixed(1) + " " + y(p.v).toFixed(1)).join(" ");
  chart.append(svg("path", { d, class: "line", id: "line" }));
  const last = data[data.length - 1];
  chart.append(svg("circle", { cx: x(last.t), cy: y(last.v), r: 4, class: "dot" }));
  $("latest").textContent = `${choice.device} ${choice.field} ${last.v}`;
}

async function tick() {
  try {
    renderOverview(await getJSON("api/v1/overview"));
    if (choice.topic) {
      const q = new URLSearchParams({ topic: choice.topic, device: choice.device, n: "200" });
      let res = await getJSON("api/v1/readings?" + q);
      if (!choice.device && res.devices && res.devices.length) {
        choice.device = res.devices[0];
        q.set("device", choice.device);
        res = await getJSON("api/v1/readings?" + q);
      }
      if (res.readings) renderChart(res);
    }
    $("updated").textContent = "Updated " + new Date().toLocaleTimeString();
  } catch (err) {
    $("health").dataset.status = "unknown";
    $("health").textContent = "unreachable";
    $("updated").textContent = String(err);
  }
}
async function tickEdges() {
  try { renderEdges(await getJSON("api/v1/edges")); } catch (err) { /* shown on the next overview */ }
}

$("topic").addEventListener("change", (e) => { choice.topic = e.target.value; choice.device = ""; choice.field = ""; tick(); });
$("device").addEventListener("change", (e) => { choice.device = e.target.value; tick(); });
$("field").addEventListener("change", (e) => { choice.field = e.target.value; tick(); });

async function loop() { await tick(); setTimeout(loop, POLL_MS); }
async function loopEdges() { await tickEdges(); setTimeout(loopEdges, POLL_MS); }
loop();
loopEdges();
