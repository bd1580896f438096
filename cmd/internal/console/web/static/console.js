// cafe console: one script for every page. Live numbers come from the
// server-sent events of /api/events; a source that is down is named at the
// top and the numbers it last gave are greyed out as stale.
"use strict";
const csrf = document.querySelector('meta[name=csrf]')?.content || "";
const $ = (s) => document.querySelector(s);
const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = text; if (cls) e.className = cls; return e; };
const fmt = (n) => (Math.round(n * 10) / 10).toLocaleString();
const when = (t) => t ? new Date(t).toLocaleTimeString([], { hour12: false }) : "–";

async function api(path, opts = {}) {
  opts.headers = Object.assign({ "X-CSRF-Token": csrf }, opts.headers || {});
  const r = await fetch(path, opts);
  if (r.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("logged out"); }
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}

function row(cells) { const tr = el("tr"); for (const c of cells) { const td = c instanceof Node ? el("td") : el("td", String(c)); if (c instanceof Node) td.append(c); if (typeof c === "number") td.className = "n"; tr.append(td); } return tr; }
function fill(tbody, rows) { tbody.replaceChildren(...rows.map(row)); }

function showSources(sources) {
  const down = (sources || []).filter((s) => !s.up);
  $("#sources").textContent = down.map((s) => `${s.name} unreachable since ${when(s.since)}` + (s.error ? ` (${s.error})` : "")).join(" · ");
  return down.map((s) => s.name);
}

// Pipeline page.
const history = [];
function drawChart() {
  const c = $("#chart"); if (!c) return;
  const g = c.getContext("2d"), w = c.width, h = c.height;
  g.clearRect(0, 0, w, h);
  const line = (key, color) => {
    const max = Math.max(1, ...history.map((p) => p[key]));
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    history.forEach((p, i) => { const x = (i / 119) * w, y = h - 4 - (p[key] / max) * (h - 8); i ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.stroke();
  };
  line("rate", "#0b5cad"); line("p99", "#b35900");
}
let mqttDown = false;
function onPipeline(v) {
  const down = showSources(v.sources);
  mqttDown = down.includes("MQTT");
  const stale = down.includes("RabbitMQ");
  history.push({ rate: v.commands_per_s || 0, p99: v.p99_ms || 0 }); if (history.length > 120) history.shift();
  if (document.body.dataset.page !== "pipeline") return;
  const tb = $("#queues tbody");
  if (!stale) fill(tb, (v.queues || []).map((q) => [q.name, q.depth, q.ready, q.unacked, q.in_rate, q.out_rate, q.consumers]));
  $("#queues").classList.toggle("stale", stale);
  $("#now-rate").textContent = stale ? "" : `now ${fmt(v.commands_per_s)} commands/s, p99 ${fmt(v.p99_ms)} ms`;
  list("#workers", stale ? [] : (v.workers || []).map((w) => `${w.role}: ${w.consumers} consuming` + (w.endpoints ? `, ${w.endpoints_up} of ${w.endpoints} metrics endpoints answer` : "")), "unknown while RabbitMQ is unreachable");
  $("#breakers").replaceChildren(el("li", v.breakers_open === undefined ? "unknown (no barista metrics)" : `${v.breakers_open} open`));
  const l = v.ledger;
  list("#ledger", stale || !l ? [] : [`${l.events_waiting} events waiting, ${l.ledgers} ledgers, lag ${fmt(l.lag_seconds)} s (${l.source})`], "unknown while RabbitMQ is unreachable");
  list("#deadby", Object.entries(v.dead_by_reason || {}).map(([k, n]) => `${k}: ${n}`), "none");
  drawChart();
}
function list(sel, items, empty) { $(sel).replaceChildren(...(items.length ? items : [empty]).map((t) => el("li", t))); }

// Devices page: the server searches; the page shows 50 at a time.
const dev = { offset: 0, limit: 50, total: 0 };
async function searchDevices() {
  const p = new URLSearchParams({ q: $("#q").value, presence: $("#presence").value, offset: dev.offset, limit: dev.limit });
  const r = await api("/api/devices?" + p);
  dev.total = r.found.total;
  onCounts(r.counts);
  fill($("#devices tbody"), r.found.rows.map((d) => [d.id, el("span", d.presence, d.presence), when(d.last_seen), d.registered ? "yes" : "no"]));
  $("#device-total").textContent = `${r.found.total.toLocaleString()} matching`;
  const pages = Math.max(1, Math.ceil(dev.total / dev.limit));
  $("#page-of").textContent = `page ${Math.floor(dev.offset / dev.limit) + 1} of ${pages}`;
  $("#prev").disabled = dev.offset === 0; $("#next").disabled = dev.offset + dev.limit >= dev.total;
  if (!performance.getEntriesByName("devices-rendered").length) performance.mark("devices-rendered");
}
// The list follows presence: searched again when the counts change.
let lastCounts = "";
function onCounts(c) {
  if (!$("#online-count")) return;
  $("#online-count").classList.toggle("stale", mqttDown);
  const key = JSON.stringify(c);
  if (lastCounts && key !== lastCounts && !dev.busy) { dev.busy = true; searchDevices().finally(() => { dev.busy = false; }); }
  lastCounts = key;
  $("#online-count").textContent = c.online.toLocaleString(); $("#known-count").textContent = c.known.toLocaleString();
}
function devicesPage() {
  $("#device-search").addEventListener("submit", (e) => { e.preventDefault(); dev.offset = 0; searchDevices(); });
  $("#prev").addEventListener("click", () => { dev.offset = Math.max(0, dev.offset - dev.limit); searchDevices(); });
  $("#next").addEventListener("click", () => { dev.offset += dev.limit; searchDevices(); });
  searchDevices();
}

// Dead letters page.
const filterParams = () => new URLSearchParams(new FormData($("#dead-filter")));
async function listDead() {
  try {
    const letters = (await api("/api/dead?" + filterParams())) || [];
    fill($("#dead tbody"), letters.map((l) => [l.message_id, l.reason, l.client_id || "–", l.device_id || "–", l.method || "–", when(l.died_at), actions(l.message_id)]));
    $("#dead-count").textContent = `${letters.length} dead letter(s)`;
  } catch (e) { $("#dead-count").textContent = "Cannot list: " + e.message; }
}
function actions(id) {
  const span = el("span");
  const b = (label, fn) => { const x = el("button", label, "link"); x.type = "button"; x.setAttribute("aria-label", `${label} ${id}`); x.addEventListener("click", fn); span.append(x); };
  b("Show", () => showDead(id)); b("Dry run", () => replay(id, true)); b("Replay", () => replay(id, false)); b("Purge", () => purge(id));
  return span;
}
async function showDead(id) {
  const r = await api("/api/dead/" + encodeURIComponent(id));
  $("#detail").hidden = false; $("#detail-id").textContent = id;
  $("#detail-body").textContent = JSON.stringify(r.letter, null, 2) + "\n\n" + r.body;
}
async function post(path, fields) {
  return api(path, { method: "POST", body: new URLSearchParams(fields) });
}
async function replay(id, dry) {
  try {
    const r = await post("/api/dead/replay", { id, dry_run: String(dry) });
    const o = r.outcomes[0] || {};
    $("#dead-msg").textContent = `${dry ? "Dry run: would replay" : "Replayed"} ${r.report.done}, refused ${r.report.refused}` + (o.refused ? ` (${o.refused})` : "");
    if (!dry) listDead();
  } catch (e) { $("#dead-msg").textContent = "Replay failed: " + e.message; }
}
function purge(id) {
  const d = $("#purge-dialog");
  $("#purge-what").textContent = `Dead letter ${id} will be removed for good.`;
  $("#purge-confirm").value = "";
  d.onclose = async () => {
    if (d.returnValue !== "purge") return;
    try { const r = await post("/api/dead/purge", { id, confirm: $("#purge-confirm").value }); $("#dead-msg").textContent = `Purged ${r.purged}`; listDead(); }
    catch (e) { $("#dead-msg").textContent = "Not purged: " + e.message; }
  };
  d.showModal();
}
function deadPage() { $("#dead-filter").addEventListener("submit", (e) => { e.preventDefault(); listDead(); }); listDead(); }

async function clientsPage() {
  const rows = await api("/api/clients");
  fill($("#clients tbody"), rows.map((c) => [c.id, c.devices.join(" "), c.rate || "default", c.burst || "default"]));
}

function live() {
  const es = new EventSource("/api/events");
  es.addEventListener("pipeline", (e) => onPipeline(JSON.parse(e.data)));
  es.addEventListener("devices", (e) => onCounts(JSON.parse(e.data)));
  es.addEventListener("logout", () => { location.href = "/login"; });
  es.onerror = () => { $("#sources").textContent = "console unreachable since " + when(Date.now()) + " (retrying)"; };
  es.onopen = () => { $("#sources").textContent = ""; };
}

({ devices: devicesPage, dead: deadPage, clients: clientsPage }[document.body.dataset.page] || (() => {}))();
if (document.body.dataset.page) live();
