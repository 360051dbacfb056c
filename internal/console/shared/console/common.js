// Shared by the core's and the edge's consoles: DOM and number helpers and
// the reading chart. Plain JS, no dependencies, no build step; each page
// loads it before its own console.js.
"use strict";

const POLL_MS = 2000;
const $ = (id) => document.getElementById(id);
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

// drawChart plots data ({t: ms, v}) of choice.device and choice.field in
// the #chart SVG and shows the newest value in #latest.
function drawChart(data) {
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
