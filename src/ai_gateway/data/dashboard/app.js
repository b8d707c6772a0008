// The AI Gateway analytics dashboard: reads /ai/analytics/* and draws inline SVG charts.
// No framework and nothing fetched from elsewhere. The master key (when the gateway has one)
// is kept in sessionStorage and sent as "Authorization: Bearer <key>".
import {
  barChart, feedbackChart, fmtCompact, fmtFull, fmtInt, fmtMs, fmtPct, fmtScore, fmtUsd,
  latencyChart, num, palette, plural,
} from "./charts.js";

const API = "/ai/analytics";
const KEY_STORE = "ai-gateway.master-key";
const REFRESH_MS = 30000;
const RANGES = { "1h": "the last hour", "6h": "the last 6 hours", "24h": "the last 24 hours", "7d": "the last 7 days", "30d": "the last 30 days" };

const state = { loading: false, data: null, color: palette(), timer: null, width: 0 };
const $ = (id) => document.getElementById(id);

// --- the API ------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(message, status) { super(message); this.status = status; }
}

async function api(path, params) {
  const url = new URL(API + path, window.location.origin);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  const headers = { Accept: "application/json" };
  const key = sessionStorage.getItem(KEY_STORE);
  if (key) headers.Authorization = `Bearer ${key}`;
  let resp;
  try {
    resp = await fetch(url, { headers, cache: "no-store", credentials: "omit" });
  } catch (err) {
    throw new ApiError(`the gateway did not answer (${err.message})`, 0);
  }
  let body = null;
  try { body = await resp.json(); } catch (_) { body = null; }
  if (!resp.ok) {
    const message = body && body.error && body.error.message ? body.error.message : `HTTP ${resp.status}`;
    throw new ApiError(message, resp.status);
  }
  return body;
}


// --- tables and cards ---------------------------------------------------------------------
function fillTable(id, rows, cells, emptyText) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  if (!rows.length) {
    const cell = body.insertRow().insertCell();
    cell.colSpan = $(id).tHead.rows[0].cells.length;
    cell.className = "empty";
    cell.textContent = emptyText;
    return;
  }
  for (const row of rows) {
    const tr = body.insertRow();
    for (const [text, numeric] of cells(row)) {
      const td = tr.insertCell();
      td.textContent = text;
      if (numeric) td.className = "num";
    }
  }
}

// A summary card: its figure, and a smaller line under it.
function setCard(id, figure, detail) {
  const line = document.createElement("span");
  line.className = "detail";
  line.textContent = detail;
  $(id).replaceChildren(figure, line);
}

function render() {
  const d = state.data;
  if (!d) return;
  // The time axis covers whole buckets (they align to the epoch), so the current, still
  // filling bucket is drawn as wide as the others.
  const bucketMs = d.series.bucket_s * 1000;
  const win = {
    start: Math.floor(Date.parse(d.series.start) / bucketMs) * bucketMs,
    end: Math.ceil(Date.parse(d.series.end) / bucketMs) * bucketMs,
    label: RANGES[$("range").value] || "this range",
    color: state.color,
  };
  for (const m of d.usage.data.map((r) => r.group).sort()) state.color(m ?? "(none)");
  const t = d.usage.totals;
  $("card-requests").textContent = fmtInt(t.requests);
  $("card-errors").textContent = t.requests ? `${fmtInt(t.errors)} (${fmtPct(t.errors / t.requests)})` : fmtInt(t.errors);
  $("card-tokens").textContent = fmtCompact(t.total_tokens);
  $("card-tokens").title = `${fmtInt(t.prompt_tokens)} prompt + ${fmtInt(t.completion_tokens)} completion`;
  $("card-cost").textContent = fmtUsd(num(t.cost_usd));
  // Hits out of lookups (requests the cache answered or could have answered), and what the
  // answers served from the cache cost when they were generated.
  setCard("card-cache", t.cache_lookups ? fmtPct(t.cache_hit_rate) : "–",
    t.cache_lookups ? `${fmtInt(t.cache_hits)} of ${plural(t.cache_lookups, "lookup")}` : "no lookups");
  setCard("card-saved", fmtUsd(num(t.saved_cost_usd)), `${fmtCompact(t.saved_tokens)} tokens`);
  $("card-saved").title = `${fmtInt(t.saved_tokens)} prompt + completion tokens served from the cache instead of the provider`;
  const f = d.feedback.totals;
  $("card-feedback").textContent = f.count ? `${fmtScore(f.mean_score)} (n=${fmtInt(f.count)})` : "none yet";

  const series = d.series;
  const withTokens = { ...series, data: series.data.map((r) => ({ ...r, tokens: num(r.prompt_tokens) + num(r.completion_tokens) })) };
  barChart($("chart-requests"), series, "requests", fmtCompact, win, true);
  barChart($("chart-tokens"), withTokens, "tokens", fmtCompact, win, true);
  barChart($("chart-cost"), series, "cost_usd", fmtUsd, win);
  latencyChart($("chart-latency"), series, win);
  barChart($("chart-errors"), series, "errors", fmtCompact, win, true);
  feedbackChart($("chart-feedback"), d.feedback, win);

  fillTable("models-table", d.models.data, (r) => [
    [r.model || "(none reached)", false], [r.deployment || "–", false], [fmtInt(num(r.requests)), true],
    [fmtPct(num(r.error_rate)), true], [fmtMs(num(r.p50_latency_ms)), true], [fmtMs(num(r.p95_latency_ms)), true],
    [fmtMs(num(r.p50_ttft_ms)), true], [fmtMs(num(r.p95_ttft_ms)), true],
    [fmtUsd(num(r.cost_usd)), true], [fmtUsd(num(r.cost_per_1k_requests)), true],
  ], `No requests in ${win.label}.`);
  // One row per template version, so versions can be compared; feedback is the mean
  // normalised score of the ratings on the version's requests, and how many there were.
  fillTable("prompts-table", d.prompts.data, (r) => [
    [r.prompt_id, false], [String(r.prompt_version), true], [fmtInt(num(r.requests)), true],
    [fmtPct(num(r.error_rate)), true], [fmtInt(num(r.prompt_tokens)), true],
    [fmtInt(num(r.completion_tokens)), true], [fmtInt(num(r.total_tokens)), true],
    [fmtUsd(num(r.cost_usd)), true], [fmtMs(num(r.mean_latency_ms)), true], [fmtMs(num(r.p95_latency_ms)), true],
    [r.feedback_count ? `${fmtScore(num(r.mean_score))} (n=${fmtInt(r.feedback_count)})` : "–", true],
  ], `No requests rendered from a prompt template in ${win.label}.`);
  fillTable("errors-table", d.errors.data, (r) => [
    [fmtFull(Date.parse(r.created_at)), false], [r.request_id, false], [r.model || "–", false],
    [r.provider || "–", false], [String(r.status), true], [r.error_type || "–", false], [r.error_code || "–", false],
  ], `No errors in ${win.label}.`);
  const types = d.errors.by_type || [];
  $("error-types").textContent = types.length
    ? `${plural(d.errors.total, "failed request")} by type: ${types.map((r) => `${r.error_type || "(no type)"} ${fmtInt(r.count)}`).join(" · ")}`
    : "";
}

// --- loading, the key, refresh ------------------------------------------------------------
function setStatus(text, isError) {
  $("status").textContent = text;
  $("status").classList.toggle("error", Boolean(isError));
}

function askKey(reason) {
  $("key-reason").textContent = reason;
  $("key-input").value = "";
  if (!$("key-dialog").open) $("key-dialog").showModal();
}

async function load() {
  if (state.loading) return;
  state.loading = true;
  const range = $("range").value;
  const p = { start: range };
  document.body.setAttribute("aria-busy", "true");
  try {
    const [usage, series, models, errors, feedback, prompts] = await Promise.all([
      api("/usage", { ...p, group_by: "model" }), api("/timeseries", p), api("/models", p),
      api("/errors", { ...p, limit: "20" }), api("/feedback", { ...p, group_by: "model" }),
      api("/prompts", p),
    ]);
    state.data = { usage, series, models, errors, feedback, prompts };
    render();
    document.body.dataset.state = usage.totals.requests ? "ready" : "empty";
    const lag = [usage, series, models, errors, feedback, prompts].some((r) => r.complete === false);
    setStatus(`Showing ${RANGES[range]} · updated ${new Date().toLocaleTimeString()}` +
      (usage.totals.requests ? "" : " · no requests recorded yet") +
      (lag ? " · the store is behind: the latest requests may be missing" : ""));
  } catch (err) {
    if (err.status === 401) {
      document.body.dataset.state = "auth";
      const had = Boolean(sessionStorage.getItem(KEY_STORE));
      setStatus("The analytics API needs the gateway's master key.", true);
      askKey(had ? "The gateway rejected that key; enter the master key again." : "The analytics API needs the gateway's master key.");
    } else {
      document.body.dataset.state = "error";
      setStatus(`Could not load analytics: ${err.message}`, true);
    }
  } finally {
    state.loading = false;
    document.body.removeAttribute("aria-busy");
  }
}

function schedule() {
  clearInterval(state.timer);
  state.timer = null;
  if ($("auto").checked) {
    state.timer = setInterval(() => { if (!document.hidden && !$("key-dialog").open) load(); }, REFRESH_MS);
  }
}

function init() {
  const fromHash = new URLSearchParams(window.location.hash.slice(1)).get("range");
  if (fromHash && RANGES[fromHash]) $("range").value = fromHash;
  $("range").addEventListener("change", () => {
    history.replaceState(null, "", `#range=${$("range").value}`);
    load();
  });
  $("auto").addEventListener("change", schedule);
  $("refresh").addEventListener("click", load);
  $("controls").addEventListener("submit", (e) => { e.preventDefault(); load(); });
  $("key-button").addEventListener("click", () => askKey("Enter the gateway's master key (needed when the gateway has one)."));
  $("key-form").addEventListener("submit", () => {
    const key = $("key-input").value.trim();
    if (key) sessionStorage.setItem(KEY_STORE, key);
    load();
  });
  $("key-cancel").addEventListener("click", () => $("key-dialog").close());
  $("key-forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORE);
    $("key-dialog").close();
    setStatus("Key forgotten.");
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden && $("auto").checked) load(); });
  let resizeTimer = null;
  new ResizeObserver(() => {
    const width = document.querySelector(".charts").clientWidth;
    if (width === state.width) return;
    state.width = width;
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(render, 150);
  }).observe(document.querySelector(".charts"));
  schedule();
  load();
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
else init();
