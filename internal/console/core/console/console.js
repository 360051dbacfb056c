// Tributary core console: polls the console listener's JSON API and
// renders it, with the helpers of common.js. Plain JS, no dependencies,
// no build step.
"use strict";

const prev = { topics: new Map(), edges: new Map(), t: 0, et: 0 };

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
  drawChart(data);
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
