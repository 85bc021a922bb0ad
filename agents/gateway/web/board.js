// The disaster board: requests, map, towns and KPIs from renkei-gateway's
// JSON API, kept current by its server-sent event stream (/api/stream).
// Request states come whole from the gateway (the broker's own fold): the
// board never computes a state, it shows the latest one it was given.
import * as L from "./vendor/leaflet/dist/leaflet-src.esm.js";
import * as echarts from "./vendor/echarts/dist/echarts.esm.min.js";

const STATE = { open: "未対応", in_progress: "対応中", fulfilled: "充足", cancelled: "取消" };
const URGENCY = { critical: "緊急", high: "高", medium: "中", low: "低" };
const URGENCY_ORDER = { critical: 0, high: 1, medium: 2, low: 3 };
const TYPE = { "aid.request": "要請", "aid.offer": "申出", "aid.accept": "受諾",
  "aid.dispatch": "発送", "aid.fulfil": "受領", "aid.cancel": "取消", "aid.withdraw": "申出撤回",
  "kpi.update": "KPI更新" };
const AREA = { a: "ア 経済成長のけん引", i: "イ 高次の都市機能の集積・強化", u: "ウ 生活関連機能サービスの向上" };
// The table shows the most pressing rows only: a centre with 10,000 open
// requests filters; it does not scroll through them. Counts and the map
// cover every request.
const MAX_ROWS = 500;
const STATE_COLOR = { open: "#d32f2f", in_progress: "#f9a825", fulfilled: "#2e7d32", cancelled: "#9e9e9e" };

const board = {
  requests: new Map(),   // request_id -> request, as the gateway last gave it
  towns: new Map(),
  kpis: [],
  seq: 0,                // every event below it is reflected
  silentAfter: 900,
  resources: {},         // code -> Japanese name
  units: {},             // resource code -> its unit in Japanese
  live: 0,               // events taken from the stream
  resets: 0,             // times the gateway said "take the state again"
  opens: 0,              // times the stream (re)connected
  source: null,
};
window.renkeiBoard = board; // for people debugging in the console, and the browser test

const $ = (sel) => document.querySelector(sel);
const fmtTime = (iso) => iso ? new Date(iso).toLocaleString("ja-JP", { hour12: false }) : "-";
const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function age(iso) {
  if (!iso) return "-";
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.floor(s)}秒`;
  if (s < 3600) return `${Math.floor(s / 60)}分`;
  if (s < 86400) return `${Math.floor(s / 3600)}時間${Math.floor((s % 3600) / 60)}分`;
  return `${Math.floor(s / 86400)}日${Math.floor((s % 86400) / 3600)}時間`;
}

async function getJSON(url) {
  const r = await fetch(url, { cache: "no-store" });
  const body = await r.json();
  if (!r.ok) throw new Error(`${url}: ${body.error?.reason ?? r.status}`);
  return body;
}

// ---- resources' Japanese names (proto/data/aid_resources.csv, shipped with the board)

function parseCSV(text) {
  const rows = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line) continue;
    const row = []; let cur = "", quoted = false;
    for (let i = 0; i < line.length; i++) {
      const c = line[i];
      if (quoted) {
        if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; }
        else if (c === '"') quoted = false;
        else cur += c;
      } else if (c === '"') quoted = true;
      else if (c === ",") { row.push(cur); cur = ""; }
      else cur += c;
    }
    row.push(cur);
    rows.push(row);
  }
  return rows;
}

async function loadResources() {
  try {
    const rows = parseCSV(await (await fetch("data/aid_resources.csv")).text());
    const head = rows.shift();
    const code = head.indexOf("code"), name = head.indexOf("name_ja");
    const unitJa = head.indexOf("unit_ja");
    for (const r of rows) { board.resources[r[code]] = r[name]; board.units[r[code]] = r[unitJa]; }
  } catch (e) { console.warn("resource names:", e); }
}
const resourceName = (code) => board.resources[code] ?? code;
const unitName = (resource, unit) => board.units[resource] || unit;

// ---- requests table

function filters() {
  const f = new FormData($("#filters"));
  return Object.fromEntries([...f.entries()].filter(([, v]) => v));
}

function selected(r, f) {
  return (!f.prefecture || r.prefecture === f.prefecture) && (!f.resource || r.resource === f.resource) &&
    (!f.urgency || r.urgency === f.urgency) && (!f.state || r.state === f.state);
}

function fillSelect(name, entries) {
  const sel = $(`#filters select[name=${name}]`);
  const keep = sel.value;
  sel.length = 1;
  for (const [v, label] of entries) sel.add(new Option(label, v));
  sel.value = keep;
}

function refreshFilterChoices() {
  const prefs = new Map(), res = new Map();
  for (const r of board.requests.values()) {
    prefs.set(r.prefecture, `${r.prefecture} ${r.prefecture_name ?? ""}`);
    res.set(r.resource, resourceName(r.resource));
  }
  fillSelect("prefecture", [...prefs].sort());
  fillSelect("resource", [...res].sort((a, b) => a[1].localeCompare(b[1], "ja")));
}

function rowHTML(r) {
  const overdue = r.deadline && new Date(r.deadline) < Date.now() &&
    (r.state === "open" || r.state === "in_progress");
  return `<td>${esc(r.request_id)}</td><td class="st">${STATE[r.state] ?? esc(r.state)}</td>` +
    `<td>${esc(r.requester_name ?? r.requester)}<small> ${esc(r.prefecture_name ?? "")}</small></td>` +
    `<td>${esc(resourceName(r.resource))}</td>` +
    `<td class="num">${r.quantity} ${esc(unitName(r.resource, r.unit))}</td><td class="num">${r.offered}</td>` +
    `<td class="num">${r.accepted}</td><td class="num">${r.dispatched}</td><td class="num">${r.received}</td>` +
    `<td><span class="urg ${esc(r.urgency)}">${URGENCY[r.urgency] ?? esc(r.urgency)}</span></td>` +
    `<td class="${overdue ? "overdue" : ""}">${fmtTime(r.deadline)}</td>` +
    `<td>${age(r.created_at)}</td>`;
}

let flashIds = new Set();

function renderRequests() {
  const f = filters();
  const counts = { open: 0, in_progress: 0, fulfilled: 0, cancelled: 0 };
  const rows = [];
  for (const r of board.requests.values()) {
    counts[r.state] = (counts[r.state] ?? 0) + 1;
    if (selected(r, f)) rows.push(r);
  }
  rows.sort((a, b) => (a.state === "fulfilled" || a.state === "cancelled") - (b.state === "fulfilled" || b.state === "cancelled") ||
    URGENCY_ORDER[a.urgency] - URGENCY_ORDER[b.urgency] || String(a.deadline).localeCompare(String(b.deadline)));
  for (const s of Object.keys(counts)) $(`#count-${s}`).textContent = counts[s];
  $("#count-all").textContent = board.requests.size;
  $("#shown").textContent = rows.length > MAX_ROWS
    ? `該当 ${rows.length} 件のうち上位 ${MAX_ROWS} 件を表示（絞り込みで他も表示）` : `${rows.length} 件を表示`;
  const body = document.createElement("tbody");
  for (const r of rows.slice(0, MAX_ROWS)) {
    const tr = document.createElement("tr");
    tr.className = `state-${r.state} urgency-${r.urgency}` + (flashIds.has(r.request_id) ? " flash" : "");
    tr.dataset.requestId = r.request_id;
    tr.dataset.state = r.state;
    tr.innerHTML = rowHTML(r);
    body.append(tr);
  }
  flashIds = new Set();
  $("#requests tbody").replaceWith(body);
  renderMarkers(rows);
}

// ---- map: outlines from Natural Earth (world-atlas), no tile server

let map, markerLayer;

async function initMap() {
  // Canvas, not SVG: thousands of markers stay fast.
  map = L.map("map", { zoomSnap: 0.25, attributionControl: true, preferCanvas: true }).fitBounds([[30.0, 128.5], [45.6, 146.0]]);
  map.attributionControl.setPrefix(false);
  map.attributionControl.addAttribution("境界: Natural Earth (world-atlas)");
  try {
    const topo = await (await fetch("vendor/world-atlas/countries-10m.json")).json();
    const land = topojson.feature(topo, topo.objects.countries);
    L.geoJSON(land, {
      style: (f) => f.id === "392"
        ? { color: "#4f6f52", weight: 1, fillColor: "#eef3e8", fillOpacity: 1 }
        : { color: "#9aa5a0", weight: 0.5, fillColor: "#e3e6e1", fillOpacity: 1 },
      interactive: false,
    }).addTo(map);
    board.outlines = land.features.length;
  } catch (e) { console.warn("outlines:", e); }
  markerLayer = L.layerGroup().addTo(map);
}

let fitted = false;
function renderMarkers(rows) {
  if (!markerLayer) return;
  markerLayer.clearLayers();
  const pts = rows.filter((r) => typeof r.location?.lat === "number").map((r) => [r.location.lat, r.location.lon]);
  if (!fitted && pts.length) {
    fitted = true;
    map.fitBounds(L.latLngBounds(pts).pad(0.3), { maxZoom: 9, animate: false });
  }
  for (const r of rows) {
    const loc = r.location;
    if (!loc || typeof loc.lat !== "number") continue;
    const radius = { critical: 10, high: 8, medium: 6, low: 5 }[r.urgency] ?? 6;
    L.circleMarker([loc.lat, loc.lon], { radius, color: "#222", weight: 1,
      fillColor: STATE_COLOR[r.state] ?? "#555", fillOpacity: 0.85 })
      .bindTooltip(`${esc(r.requester_name ?? r.requester)}: ${esc(resourceName(r.resource))} ` +
        `${r.quantity}${esc(unitName(r.resource, r.unit))}（${STATE[r.state] ?? ""}・${URGENCY[r.urgency] ?? ""}）<br>${esc(loc.place ?? "")}`)
      .on("click", () => openTimeline(r.request_id))
      .addTo(markerLayer);
  }
  board.markers = markerLayer.getLayers().length;
}

// ---- a request's timeline

function gist(ev, resource) {
  const e = ev.event ?? {};
  const parts = [];
  if (e.offer_id) parts.push(e.offer_id);
  if (e.quantity !== undefined) parts.push(`数量 ${e.quantity} ${unitName(resource, e.unit ?? "")}`);
  if (e.eta) parts.push(`到着予定 ${fmtTime(e.eta)}`);
  if (e.reason) parts.push(`理由: ${e.reason}`);
  if (e.note) parts.push(e.note);
  return parts.map(esc).join(" ・ ");
}

async function openTimeline(id) {
  const r = await getJSON(`api/requests/${encodeURIComponent(id)}`);
  $("#timeline-title").textContent = `${r.request_id} ${r.requester_name ?? r.requester}: ${resourceName(r.resource)}`;
  $("#timeline-summary").innerHTML = `状態 <b>${STATE[r.state] ?? esc(r.state)}</b> ・ 要請 ${r.quantity} ${esc(unitName(r.resource, r.unit))} ・ ` +
    `申出 ${r.offered} ・ 受諾 ${r.accepted} ・ 発送 ${r.dispatched} ・ 受領 ${r.received} ・ 期限 ${fmtTime(r.deadline)}` +
    (r.location?.place ? `<br>場所: ${esc(r.location.place)}` : "");
  $("#timeline-events").innerHTML = r.timeline.map((t) =>
    `<tr><td>${fmtTime(t.recv_time)}</td><td>${fmtTime(t.event?.sent_at)}</td><td>${t.seq}</td><td>${esc(t.municipality_name ?? t.event?.municipality)}</td>` +
    `<td>${TYPE[t.event?.type] ?? esc(t.event?.type)}</td><td>${gist(t, r.resource)}</td></tr>`).join("");
  $("#timeline").hidden = false;
  $("#timeline").dataset.requestId = id;
}

// ---- towns

function renderTowns() {
  const now = Date.now();
  const rows = [...board.towns.values()].map((t) => {
    const last = t.last_published ? new Date(t.last_published).getTime() : 0;
    return { ...t, silent: !last || now - last > board.silentAfter * 1000 };
  }).sort((a, b) => b.silent - a.silent || String(a.last_published).localeCompare(String(b.last_published)));
  const silent = rows.filter((t) => t.silent).length;
  $("#silent-badge").hidden = silent === 0;
  $("#silent-badge").textContent = `沈黙 ${silent}`;
  $("#towns tbody").innerHTML = rows.map((t) =>
    `<tr class="${t.silent ? "silent" : ""}" data-code="${esc(t.code)}" data-silent="${t.silent}">` +
    `<td>${esc(t.name ?? t.code)}</td><td>${esc(t.prefecture_name ?? "")}</td><td>${fmtTime(t.last_published)}</td>` +
    `<td>${age(t.last_published)}</td><td class="num">${t.events}</td>` +
    `<td class="status">${t.silent ? "沈黙" : "発信中"}</td></tr>`).join("");
}

async function loadTowns() {
  const t = await getJSON("api/towns");
  board.silentAfter = t.silent_after_s;
  $("#silent-after").textContent = board.silentAfter >= 60 ? `${Math.round(board.silentAfter / 60)}分` : `${board.silentAfter}秒`;
  board.towns = new Map(t.towns.map((x) => [x.code, x]));
  renderTowns();
}

// ---- KPIs: progress from baseline toward target, grouped by policy area

let kpiChart;

function progress(k) {
  const span = k.target.value - k.baseline.value;
  return span === 0 ? null : Math.round(((k.current.value - k.baseline.value) / span) * 1000) / 10;
}

// "r:NAME" a city region, "m:CODE" a municipality, "" everything.
function kpiScope() {
  return new FormData($("#kpi-filter")).get("scope") ?? "";
}

function inScope(k, scope) {
  return !scope || (scope.startsWith("r:") ? k.region === scope.slice(2) : k.municipality === scope.slice(2));
}

function fillKpiScopes() {
  const sel = $("#kpi-filter select[name=scope]");
  const keep = sel.value;
  const regions = [...new Set(board.kpis.map((k) => k.region).filter(Boolean))].sort();
  const munis = new Map(board.kpis.map((k) => [k.municipality, k.municipality_name ?? k.municipality]));
  sel.length = 1;
  for (const r of regions) sel.add(new Option(`圏域: ${r}`, `r:${r}`));
  for (const [code, name] of [...munis].sort()) sel.add(new Option(`自治体: ${name}`, `m:${code}`));
  sel.value = keep;
}

function latestKpis() {
  const latest = new Map();
  const scope = kpiScope();
  for (const k of board.kpis) {
    if (!inScope(k, scope)) continue;
    const key = `${k.kpi_id}|${k.municipality}`;
    if (!latest.has(key) || latest.get(key).fiscal_year < k.fiscal_year) latest.set(key, k);
  }
  return [...latest.values()].sort((a, b) => a.policy_area.localeCompare(b.policy_area) || a.kpi_id.localeCompare(b.kpi_id));
}

function renderKpis() {
  const list = latestKpis();
  $("#kpis tbody").innerHTML = list.map((k) => `<tr data-kpi-id="${esc(k.kpi_id)}">` +
    `<td>${esc(AREA[k.policy_area[0]]?.[0] ?? "")}${esc(k.policy_area.slice(2))}</td><td>${esc(k.name)}</td>` +
    `<td>${esc(k.municipality_name ?? k.municipality)}</td><td>${esc(k.region ?? "")}</td>` +
    `<td class="num">${k.baseline.value}（${k.baseline.label ?? k.baseline.fy}）</td>` +
    `<td class="num">${k.target.value}（${k.target.label ?? k.target.fy}）</td>` +
    `<td class="num">${k.current.value}（${k.current.label ?? k.current.fy}）</td><td>${esc(k.unit)}</td>` +
    `<td class="num">${progress(k) ?? "-"}%</td></tr>`).join("");
  if ($("#view-kpis").hidden) return;
  kpiChart ??= echarts.init($("#kpi-chart"));
  const areas = Object.keys(AREA).filter((a) => list.some((k) => k.policy_area[0] === a));
  kpiChart.setOption({
    animation: false,
    title: { text: "KPI 進捗（基準値 0% → 目標値 100%）", left: "center", textStyle: { fontSize: 14 } },
    tooltip: { trigger: "axis", axisPointer: { type: "shadow" } },
    legend: { top: 30, data: areas.map((a) => AREA[a]) },
    grid: { left: 260, right: 40, top: 70, bottom: 24 },
    xAxis: { type: "value", name: "%", max: (v) => Math.max(100, Math.ceil(v.max / 10) * 10) },
    yAxis: { type: "category", inverse: true, data: list.map((k) => `${k.name}（${k.municipality_name ?? k.municipality}）`),
      axisLabel: { width: 240, overflow: "truncate" } },
    series: areas.map((a) => ({
      name: AREA[a], type: "bar", stack: "p",
      data: list.map((k) => (k.policy_area[0] === a ? progress(k) : null)),
      markLine: a === areas[0] ? { symbol: "none", data: [{ xAxis: 100, name: "目標" }],
        lineStyle: { color: "#b71c1c", type: "dashed" }, label: { formatter: "目標" } } : undefined,
    })),
  }, true);
  renderKpiYears(list);
}

// Each KPI over the fiscal years: 0% at its baseline's year, then each
// year's current value, toward 100% at the target's year.
let kpiYears;
function renderKpiYears(list) {
  kpiYears ??= echarts.init($("#kpi-years"));
  const scope = kpiScope();
  const years = new Set();
  const series = list.map((latest) => {
    const pts = board.kpis.filter((k) => k.kpi_id === latest.kpi_id && k.municipality === latest.municipality && inScope(k, scope))
      .sort((a, b) => a.fiscal_year - b.fiscal_year)
      .map((k) => [String(k.fiscal_year), progress({ ...latest, current: k.current })]);
    const all = [[String(latest.baseline.fy), 0], ...pts];
    for (const [y] of all) years.add(y);
    years.add(String(latest.target.fy));
    return { name: `${latest.name}（${latest.municipality_name ?? latest.municipality}）`, type: "line",
      data: all, symbolSize: 7, connectNulls: true };
  });
  const axis = [...years].sort();
  kpiYears.setOption({
    animation: false,
    title: { text: "年度別の進捗（基準年度 0% → 目標 100%）", left: "center", textStyle: { fontSize: 14 } },
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", bottom: 0 },
    grid: { left: 60, right: 40, top: 40, bottom: 60 },
    xAxis: { type: "category", data: axis, name: "年度", axisLabel: { formatter: (y) => `${y}年度` } },
    yAxis: { type: "value", name: "%", max: (v) => Math.max(100, Math.ceil(v.max / 10) * 10) },
    series: series.map((s, i) => i ? s : { ...s, markLine: { symbol: "none", data: [{ yAxis: 100 }],
      lineStyle: { color: "#b71c1c", type: "dashed" }, label: { formatter: "目標" } } }),
  }, true);
}

async function loadKpis() {
  board.kpis = (await getJSON("api/kpis")).kpis;
  fillKpiScopes();
  renderKpis();
}

// ---- audit: the requests as of a past moment (/api/asof, the broker's log)

async function showAsOf(e) {
  e?.preventDefault();
  const local = new FormData($("#audit-form")).get("time");
  if (!local) return;
  const when = new Date(local);
  const r = await fetch(`api/asof?time=${encodeURIComponent(when.toISOString())}`, { cache: "no-store" });
  const text = await r.text();
  if (!r.ok) { $("#audit-summary").textContent = JSON.parse(text).error?.reason ?? r.status; return; }
  const lines = text.split("\n").filter(Boolean).map((l) => JSON.parse(l));
  const sum = lines.at(-1)?.as_of ?? {};
  const reqs = lines.filter((l) => l.kind === "request");
  const by = sum.by_state ?? {};
  $("#audit-summary").textContent = `${fmtTime(sum.time)} 時点（seq ${sum.seq}）: 要請 ${sum.requests} 件 — ` +
    Object.entries(STATE).map(([k, v]) => `${v} ${by[k] ?? 0}`).join(" ・ ") + ` ・ KPI ${sum.kpis} 件`;
  $("#audit tbody").innerHTML = reqs.map((q) => {
    const name = board.requests.get(q.request_id)?.requester_name ?? board.towns.get(q.requester)?.name ?? q.requester;
    return `<tr class="state-${esc(q.state)} urgency-${esc(q.urgency)}" data-request-id="${esc(q.request_id)}" data-state="${esc(q.state)}">` +
      `<td>${esc(q.request_id)}</td><td>${STATE[q.state] ?? esc(q.state)}</td><td>${esc(name)}</td>` +
      `<td>${esc(resourceName(q.resource))}</td><td class="num">${q.quantity} ${esc(unitName(q.resource, q.unit))}</td>` +
      `<td class="num">${q.accepted}</td><td class="num">${q.dispatched}</td><td class="num">${q.fulfilled}</td></tr>`;
  }).join("");
  $("#audit").dataset.seq = sum.seq;
}

// ---- the live stream

// At most one render per 250 ms however fast events come.
let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  setTimeout(() => requestAnimationFrame(() => {
    renderPending = false;
    renderRequests();
    renderTowns();
    $("#seq").textContent = board.seq;
    $("#updated").textContent = new Date().toLocaleTimeString("ja-JP", { hour12: false });
  }), 250);
}

let kpiReload = null;
function take(msg) {
  board.seq = Math.max(board.seq, msg.seq + 1);
  board.live++;
  if (msg.request) {
    board.requests.set(msg.request.request_id, msg.request);
    flashIds.add(msg.request.request_id);
  }
  if (msg.town) board.towns.set(msg.town.code, msg.town);
  if (msg.event?.type === "kpi.update")
    kpiReload ??= setTimeout(() => { kpiReload = null; loadKpis(); }, 500);
  const open = $("#timeline");
  if (!open.hidden && msg.request && open.dataset.requestId === msg.request.request_id)
    openTimeline(msg.request.request_id);
  scheduleRender();
}

function setLink(up, text) {
  $("#link").className = `link ${up ? "up" : "down"}`;
  $("#link").textContent = text;
}

function follow() {
  // EventSource sends the last id it saw (Last-Event-ID) when it comes back
  // by itself, so a dropped connection resumes where it left off.
  const es = new EventSource(`api/stream?from=${board.seq}`);
  board.source = es;
  es.onopen = () => { board.opens++; setLink(true, "ライブ"); };
  es.onmessage = (e) => take(JSON.parse(e.data));
  es.addEventListener("reset", () => { board.resets++; es.close(); loadAll().then(follow); });
  es.onerror = () => {
    setLink(false, "再接続中");
    // A refused answer (not a dropped link) closes an EventSource for good:
    // start a new one from where the board is.
    if (es.readyState === EventSource.CLOSED) setTimeout(follow, 2000);
  };
}

async function loadAll() {
  const r = await getJSON("api/requests");
  board.requests = new Map(r.requests.map((x) => [x.request_id, x]));
  board.seq = r.seq;
  refreshFilterChoices();
  await Promise.all([loadTowns(), loadKpis()]);
  scheduleRender();
}

// ---- start

function initFilters() {
  fillSelect("urgency", Object.entries(URGENCY));
  fillSelect("state", Object.entries(STATE));
  $("#filters").addEventListener("change", renderRequests);
  $("#kpi-filter").addEventListener("change", renderKpis);
}

function initViews() {
  for (const b of document.querySelectorAll("nav button")) {
    b.addEventListener("click", () => {
      for (const x of document.querySelectorAll("nav button")) x.classList.toggle("active", x === b);
      for (const v of document.querySelectorAll(".view")) v.hidden = v.id !== `view-${b.dataset.view}`;
      if (b.dataset.view === "kpis") { renderKpis(); kpiChart?.resize(); kpiYears?.resize(); }
      if (b.dataset.view === "requests") map?.invalidateSize();
    });
  }
  $("#requests").addEventListener("click", (e) => {
    const tr = e.target.closest("tr[data-request-id]");
    if (tr) openTimeline(tr.dataset.requestId);
  });
  $("#timeline-close").addEventListener("click", () => { $("#timeline").hidden = true; });
  $("#audit-form").addEventListener("submit", showAsOf);
}

async function start() {
  initFilters();
  initViews();
  await Promise.all([loadResources(), initMap()]);
  for (;;) {
    try { await loadAll(); break; } catch (e) {
      setLink(false, "ゲートウェイに接続できません");
      await new Promise((ok) => setTimeout(ok, 2000));
    }
  }
  follow();
  // Ages and silence change with time alone.
  setInterval(renderTowns, 1000);
  setInterval(renderRequests, 10000);
  document.body.dataset.ready = "1";
}

start();
