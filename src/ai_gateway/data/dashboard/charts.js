// Drawing for the dashboard: number and time formatting, and the inline SVG charts.
// Each chart function takes its <figure>, the data, and a window {start, end, label, color}
// (milliseconds, the range's words, and a model -> colour function).

const SVG_NS = "http://www.w3.org/2000/svg";
// Okabe-Ito: distinguishable with the common forms of colour blindness.
const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#7F7F7F", "#F0E442"];
const TIME_STEPS = [60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

// --- formatting ---------------------------------------------------------------------------
const intFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compactFmt = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const usdFmt = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4 });
const pctFmt = new Intl.NumberFormat(undefined, { style: "percent", maximumFractionDigits: 1 });

export const num = (v) => (v === null || v === undefined || v === "" ? null : Number(v));
export const fmtInt = (v) => (v === null ? "–" : intFmt.format(v));
export const fmtCompact = (v) => (v === null ? "–" : Math.abs(v) < 1000 ? intFmt.format(v) : compactFmt.format(v));
export function fmtUsd(v) {
  if (v === null || Number.isNaN(v)) return "–";
  if (v === 0) return "$0";
  if (Math.abs(v) < 0.01) return "$" + Number(v.toPrecision(2)).toString();
  return usdFmt.format(v);
}
export function fmtMs(v) {
  if (v === null || Number.isNaN(v)) return "–";
  return v < 1000 ? `${Math.round(v)} ms` : `${(v / 1000).toFixed(v < 10000 ? 2 : 1)} s`;
}
export const plural = (n, word) => `${fmtInt(n)} ${word}${n === 1 ? "" : "s"}`;
export const fmtPct = (v) => (v === null ? "–" : pctFmt.format(v));
export const fmtScore = (v) => (v === null ? "–" : v.toFixed(2));

function fmtTime(ms, spanMs) {
  const d = new Date(ms);
  const opts = spanMs > 2 * 86400000
    ? { month: "short", day: "numeric", ...(spanMs < 8 * 86400000 ? { hour: "2-digit" } : {}) }
    : { hour: "2-digit", minute: "2-digit" };
  return d.toLocaleString(undefined, opts);
}
export const fmtFull = (ms) => new Date(ms).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });

// Colours stay with their model across refreshes.
export function palette() {
  const colors = new Map();
  return (model) => {
    if (!colors.has(model)) colors.set(model, PALETTE[colors.size % PALETTE.length]);
    return colors.get(model);
  };
}

// --- SVG helpers --------------------------------------------------------------------------
function svgEl(name, attrs, parent) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}
function tip(el, text) { svgEl("title", {}, el).textContent = text; }

// The y axis: a "nice" step (1, 2, 2.5 or 5 times a power of ten) and a top that is a multiple.
function niceScale(max, integer) {
  if (!(max > 0)) return { top: integer ? 4 : 1, step: integer ? 1 : 0.25 };
  const raw = max / 4;
  const exp = Math.pow(10, Math.floor(Math.log10(raw)));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * exp).find((s) => s >= raw);
  if (integer) step = Math.max(1, Math.ceil(step));
  return { top: Math.ceil(max / step - 1e-9) * step, step };
}

// A chart's frame: axes, grid and labels. Returns scales and the SVG.
function frame(fig, yMax, yFmt, win, integer) {
  const plot = fig.querySelector(".plot");
  plot.replaceChildren();
  const width = Math.max(280, Math.floor(plot.clientWidth || 480));
  const height = 220;
  const m = { left: 60, right: 14, top: 12, bottom: 30 };
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, plot);
  const x = (t) => m.left + ((t - win.start) / (win.end - win.start)) * (width - m.left - m.right);
  const { top, step: yStep } = niceScale(yMax, integer);
  const y = (v) => height - m.bottom - (v / top) * (height - m.top - m.bottom);
  const axis = svgEl("g", { class: "axis" }, svg);
  for (let i = 0; i * yStep <= top + 1e-9; i += 1) {
    const v = i * yStep;
    svgEl("line", { x1: m.left, x2: width - m.right, y1: y(v), y2: y(v), class: i ? "grid" : "baseline" }, axis);
    svgEl("text", { x: m.left - 6, y: y(v) + 4, "text-anchor": "end" }, axis).textContent = yFmt(v);
  }
  const span = win.end - win.start;
  const step = TIME_STEPS.find((s) => span / s <= Math.max(2, Math.floor((width - 80) / 75))) || TIME_STEPS[TIME_STEPS.length - 1];
  const offset = new Date(win.start).getTimezoneOffset() * 60000;
  for (let t = Math.ceil((win.start - offset) / step) * step + offset; t <= win.end; t += step) {
    svgEl("line", { x1: x(t), x2: x(t), y1: height - m.bottom, y2: height - m.bottom + 4 }, axis);
    svgEl("text", { x: x(t), y: height - 10, "text-anchor": "middle" }, axis).textContent = fmtTime(t, span);
  }
  return { svg, x, y, m, width, height };
}

function emptyState(fig, message) {
  const plot = fig.querySelector(".plot");
  const p = document.createElement("p");
  p.className = "empty";
  p.textContent = message;
  plot.replaceChildren(p);
  fig.querySelector(".legend").replaceChildren();
  fig.dataset.rendered = "empty";
}

function legend(fig, models, win) {
  const list = fig.querySelector(".legend");
  list.replaceChildren();
  for (const model of models) {
    const li = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.backgroundColor = win.color(model);
    li.append(swatch, document.createTextNode(model));
    list.appendChild(li);
  }
}

function dataTable(fig, headers, rows) {
  let details = fig.querySelector("details");
  if (!details) {
    details = document.createElement("details");
    details.innerHTML = "<summary>Data table</summary>";
    fig.appendChild(details);
  }
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const h of headers) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = h;
    head.appendChild(th);
  }
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const cell of row) tr.insertCell().textContent = cell;
  }
  details.replaceChildren(details.querySelector("summary"), table);
}

// --- charts -------------------------------------------------------------------------------
// Stacked bars per time bucket, one colour per model.
export function barChart(fig, series, field, fmt, win, integer) {
  const rows = series.data.filter((r) => num(r[field]) > 0);
  if (!rows.length) {
    const what = series.data.length ? fig.dataset.empty || `No ${fig.dataset.title.toLowerCase()}` : "No requests";
    return emptyState(fig, `${what} in ${win.label}.`);
  }
  const buckets = new Map();
  for (const r of rows) {
    const t = Date.parse(r.bucket);
    if (!buckets.has(t)) buckets.set(t, []);
    buckets.get(t).push(r);
  }
  let max = 0;
  for (const list of buckets.values()) max = Math.max(max, list.reduce((s, r) => s + num(r[field]), 0));
  const { svg, x, y } = frame(fig, max, fmt, win, integer);
  const bucketMs = series.bucket_s * 1000;
  const models = [...new Set(rows.map((r) => r.model))].sort();
  const g = svgEl("g", { class: "bars" }, svg);
  for (const [t, list] of buckets) {
    const left = x(Math.max(t, win.start));
    const w = Math.max(2, x(Math.min(t + bucketMs, win.end)) - left - 1);
    let base = 0;
    for (const r of list.sort((a, b) => a.model.localeCompare(b.model))) {
      const v = num(r[field]);
      const rect = svgEl("rect", { x: left, y: y(base + v), width: w, height: Math.max(0.5, y(base) - y(base + v)), fill: win.color(r.model) }, g);
      tip(rect, `${fmtFull(t)} · ${r.model}: ${fmt(v)}`);
      base += v;
    }
  }
  const total = rows.reduce((s, r) => s + num(r[field]), 0);
  svg.setAttribute("aria-label", `${fig.dataset.title} over ${win.label}, by model: ${fmt(total)} in total.`);
  legend(fig, models, win);
  dataTable(fig, ["Interval start", "Model", fig.dataset.title], rows.map((r) => [fmtFull(Date.parse(r.bucket)), r.model, fmt(num(r[field]))]));
  fig.dataset.rendered = "true";
  fig.dataset.series = String(models.length);
}

// p50 (solid) and p95 (dashed) latency lines per model; a gap breaks the line.
export function latencyChart(fig, series, win) {
  const rows = series.data.filter((r) => num(r.p50_latency_ms) !== null);
  if (!rows.length) return emptyState(fig, `No requests in ${win.label}.`);
  const max = Math.max(...rows.map((r) => num(r.p95_latency_ms) ?? num(r.p50_latency_ms)));
  const { svg, x, y } = frame(fig, max, fmtMs, win);
  const models = [...new Set(rows.map((r) => r.model))].sort();
  const gap = series.bucket_s * 1000 * 1.5;
  for (const model of models) {
    const points = rows.filter((r) => r.model === model).map((r) => ({ t: Date.parse(r.bucket) + series.bucket_s * 500, r })).sort((a, b) => a.t - b.t);
    for (const [field, dashed] of [["p50_latency_ms", false], ["p95_latency_ms", true]]) {
      let d = "";
      let prev = null;
      for (const p of points) {
        const v = num(p.r[field]);
        if (v === null) { prev = null; continue; }
        d += `${prev === null || p.t - prev > gap ? "M" : "L"}${x(p.t).toFixed(1)},${y(v).toFixed(1)}`;
        prev = p.t;
      }
      if (!d) continue;
      svgEl("path", { d, fill: "none", stroke: win.color(model), "stroke-width": 2, "stroke-dasharray": dashed ? "5 4" : "none", class: "line" }, svg);
      points.forEach((p, i) => {
        const v = num(p.r[field]);
        if (v === null) return;
        const near = (q) => q && num(q.r[field]) !== null && Math.abs(q.t - p.t) <= gap;
        if (points.length > 24 && (near(points[i - 1]) || near(points[i + 1]))) return;
        const dot = svgEl("circle", { cx: x(p.t), cy: y(v), r: dashed ? 2.5 : 3, fill: dashed ? "var(--bg)" : win.color(model), stroke: win.color(model), "stroke-width": 1.5 }, svg);
        tip(dot, `${fmtFull(p.t)} · ${model} ${dashed ? "p95" : "p50"}: ${fmtMs(v)}`);
      });
    }
  }
  svg.setAttribute("aria-label", `Latency over ${win.label}: p50 and p95 per model, highest p95 ${fmtMs(max)}.`);
  legend(fig, models, win);
  dataTable(fig, ["Interval start", "Model", "p50", "p95"], rows.map((r) => [fmtFull(Date.parse(r.bucket)), r.model, fmtMs(num(r.p50_latency_ms)), fmtMs(num(r.p95_latency_ms))]));
  fig.dataset.rendered = "true";
  fig.dataset.series = String(models.length);
}

// Horizontal bars: mean feedback score per model (0-1), with counts.
export function feedbackChart(fig, feedback, win) {
  const rows = feedback.data.filter((r) => num(r.count) > 0);
  if (!rows.length) return emptyState(fig, `No feedback in ${win.label}. Send it with POST /ai/feedback.`);
  const plot = fig.querySelector(".plot");
  plot.replaceChildren();
  const width = Math.max(280, Math.floor(plot.clientWidth || 480));
  const rowH = 30;
  const left = Math.min(160, width * 0.35);
  const right = 96;
  const height = rows.length * rowH + 28;
  const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img" }, plot);
  const x = (v) => left + v * (width - left - right);
  const axis = svgEl("g", { class: "axis" }, svg);
  for (const v of [0, 0.25, 0.5, 0.75, 1]) {
    svgEl("line", { x1: x(v), x2: x(v), y1: 4, y2: height - 22, class: v ? "grid" : "baseline" }, axis);
    svgEl("text", { x: x(v), y: height - 6, "text-anchor": "middle" }, axis).textContent = v.toFixed(2);
  }
  rows.forEach((r, i) => {
    const name = r.group ?? "(none)";
    const mean = num(r.mean_score) ?? 0;
    const top = 6 + i * rowH;
    svgEl("text", { x: left - 8, y: top + 15, "text-anchor": "end", class: "label" }, svg).textContent = name.length > 22 ? name.slice(0, 21) + "…" : name;
    const bar = svgEl("rect", { x: x(0), y: top + 3, width: Math.max(1.5, x(mean) - x(0)), height: rowH - 12, fill: win.color(name) }, svg);
    tip(bar, `${name}: mean ${fmtScore(mean)} from ${plural(r.count, "rating")} (${r.positive} positive, ${r.negative} negative)`);
    svgEl("text", { x: width - right + 8, y: top + 15, class: "label" }, svg).textContent = `${fmtScore(mean)} · n=${r.count}`;
  });
  svg.setAttribute("aria-label", `Mean feedback score by model over ${win.label}.`);
  fig.querySelector(".legend").replaceChildren();
  const t = feedback.totals;
  const li = document.createElement("li");
  li.textContent = `${plural(t.count, "rating")} · ${fmtInt(t.positive)} positive · ${fmtInt(t.negative)} negative`;
  fig.querySelector(".legend").appendChild(li);
  dataTable(fig, ["Model", "Ratings", "Mean score", "Positive", "Negative"], rows.map((r) => [r.group ?? "(none)", fmtInt(num(r.count)), fmtScore(num(r.mean_score)), fmtInt(num(r.positive)), fmtInt(num(r.negative))]));
  fig.dataset.rendered = "true";
  fig.dataset.series = String(rows.length);
}

