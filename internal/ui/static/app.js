// sluice dashboard: four views over the JSON API of internal/ui, refreshed on every
// server-sent "change" event (and every 5 s for the stream and consumer figures).
// No dependencies; every value from the server goes into the page as text, never as HTML.
"use strict";

// ---------- formatting: numbers with units ----------
const fmtInt = n => (n == null ? "–" : Math.round(n).toLocaleString("en-US"));
function fmtShort(n) {
  const a = Math.abs(n);
  if (a > 0 && a < 1) return String(Number(n.toPrecision(2)));
  if (a >= 1e9) return (n / 1e9).toFixed(a >= 1e10 ? 0 : 1) + "G";
  if (a >= 1e6) return (n / 1e6).toFixed(a >= 1e7 ? 0 : 1) + "M";
  if (a >= 1e3) return (n / 1e3).toFixed(a >= 1e4 ? 0 : 1) + "k";
  return String(Math.round(n * 10) / 10);
}
function fmtBytes(b) {
  if (b == null || b < 0) return "–";
  const u = ["B", "KB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (b >= 1000 && i < u.length - 1) { b /= 1000; i++; }
  return (i === 0 ? String(b) : b.toFixed(b >= 100 ? 0 : 1)) + " " + u[i];
}
const fmtMBs = bps => (bps > 0 && bps < 1e4 ? (bps / 1e3).toFixed(1) + " KB/s" : (bps / 1e6).toFixed(bps >= 1e8 ? 0 : bps >= 1e6 ? 1 : 2) + " MB/s");
const fmtRows = rps => fmtShort(rps) + " rows/s";
function fmtDur(ms) {
  if (ms == null) return "–";
  if (ms < 1000) return Math.round(ms) + " ms";
  const s = ms / 1000;
  if (s < 60) return s.toFixed(s < 10 ? 1 : 0) + " s";
  const two = (n1, u1, n2, u2) => n1 + " " + u1 + (n2 ? " " + n2 + " " + u2 : "");
  const m = Math.floor(s / 60);
  if (m < 60) return two(m, "min", Math.round(s - m * 60), "s");
  const h = Math.floor(m / 60);
  if (h < 48) return two(h, "h", m - h * 60, "min");
  return two(Math.floor(h / 24), "d", h % 24, "h");
}
function ago(ms) {
  if (!ms) return "–";
  const d = Date.now() - ms;
  if (d < 5000) return "just now";
  if (d < 60000) return Math.round(d / 1000) + " s ago";
  if (d < 3600000) return Math.round(d / 60000) + " min ago";
  if (d < 172800000) return Math.round(d / 3600000) + " h ago";
  return Math.round(d / 86400000) + " days ago";
}
const when = ms => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) + " UTC" : "–");

// ---------- DOM helpers ----------
function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === "onclick" || k === "oninput") e[k] = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k != null && k !== false) e.append(k instanceof Node ? k : String(k));
  return e;
}
// fill replaces el's children with kids (nested arrays flattened, null and false left out).
function fill(el, ...kids) {
  el.replaceChildren(...kids.flat(Infinity).filter(k => k != null && k !== false));
}
const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...kids) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const k of kids) e.append(k instanceof Node ? k : String(k));
  return e;
}
const card = (k, v, sub, extra) => h("div", { class: "card" }, h("div", { class: "k" }, k), h("div", { class: "v" }, v), sub ? h("div", { class: "s" }, sub) : null, extra);
const badge = t => h("span", { class: "badge " + t }, t || "–");
const num = (v, attrs) => h("td", Object.assign({ class: "n" }, attrs || {}), v);
function usageBar(frac) {
  const pct = Math.max(0, Math.min(1, frac)) * 100;
  return h("div", { class: "bar" }, h("span", { style: null, "data-pct": pct.toFixed(1) }));
}

// Bar chart of per-minute values (SVG, drawn here: no chart library).
function barChart(values, startMs, binSec, label, cls) {
  const W = 600, H = 140, L = 46, B = 18, T = 8;
  const top = Math.max(...values, 0);
  const max = top > 0 ? niceCeil(top) : 1;
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": label });
  const bw = (W - L) / values.length;
  for (const f of [0, 0.5, 1]) {
    const y = T + (H - B - T) * (1 - f);
    svg.append(s("line", { x1: L, x2: W, y1: y, y2: y }));
    svg.append(s("text", { x: L - 4, y: y + 3, "text-anchor": "end" }, fmtShort(max * f)));
  }
  values.forEach((v, i) => {
    const hgt = (H - B - T) * (v / max);
    const r = s("rect", { class: "b " + (cls || ""), x: L + i * bw + 0.5, y: H - B - hgt, width: Math.max(1, bw - 1), height: hgt });
    r.append(s("title", {}, `${new Date(startMs + i * binSec * 1000).toISOString().slice(11, 16)} UTC: ${fmtShort(v)}`));
    svg.append(r);
  });
  for (const [i, anchor] of [[0, "start"], [values.length / 2, "middle"], [values.length - 1, "end"]]) {
    const t = new Date(startMs + Math.floor(i) * binSec * 1000).toISOString().slice(11, 16);
    svg.append(s("text", { x: anchor === "end" ? W : L + Math.floor(i) * bw, y: H - 4, "text-anchor": anchor }, t));
  }
  return svg;
}
// niceCeil rounds v up to 1, 2 or 5 times a power of ten (an axis maximum a person reads at once).
function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}
function spark(values) {
  const W = 140, H = 26, max = Math.max(1, ...values);
  const svg = s("svg", { class: "spark", viewBox: `0 0 ${W} ${H}` });
  const bw = W / Math.max(values.length, 1);
  values.forEach((v, i) => {
    const hgt = Math.max(v > 0 ? 1 : 0, (H - 2) * (v / max));
    svg.append(s("rect", { x: i * bw + 1, y: H - hgt, width: Math.max(1, bw - 2), height: hgt }));
  });
  return svg;
}

// ---------- data ----------
async function get(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": " + r.status + " " + (await r.text()));
  return r.json();
}

// ---------- views ----------
async function overview(root) {
  const o = await get("/api/overview");
  const c = o.cluster, rate = o.rate, t = o.totals, L = o.ledger;
  const rs = c.rows_stream || {};
  const ageLimit = rs.max_age_sec ? fmtDur(rs.max_age_sec * 1000) : "unlimited";
  const byteLimit = rs.max_bytes > 0 ? fmtBytes(rs.max_bytes) : "no byte limit";
  const frac = rs.max_bytes > 0 ? rs.bytes / rs.max_bytes : (rs.max_age_sec && rs.first_ms ? (Date.now() - rs.first_ms) / (rs.max_age_sec * 1000) : 0);
  const dl = Object.entries(c.dlq_by_stage || {}).map(([k, v]) => `${k} ${fmtInt(v)}`).join(", ");
  fill(root,
    h("div", { class: "cards" },
      card("CSV rows / s", h("span", { id: "rows-rate" }, fmtRows(rate.rows_per_sec_5m)), "last 5 min · hour avg " + fmtRows(rate.rows_per_sec_1h)),
      card("CSV bytes / s", h("span", { id: "bytes-rate" }, fmtMBs(rate.bytes_per_sec_5m)), "last 5 min · hour avg " + fmtMBs(rate.bytes_per_sec_1h)),
      card("Archives", h("span", { id: "archives-total" }, fmtInt(t.archives)),
        `${fmtInt(t.committed)} committed · ${fmtInt(t.pending)} pending · ${fmtInt(t.failed)} failed` + (t.duplicates ? ` · ${fmtInt(t.duplicates)} duplicates` : "")),
      card("Ledger now", h("span", { id: "ledger-now" }, `${fmtInt(L.landed)} / ${fmtInt(L.extracting)} / ${fmtInt(L.committed)} / ${fmtInt(L.failed)}`),
        "landed / extracting / committed / failed" + (L.extracted ? ` · ${fmtInt(L.extracted)} extracted` : "") +
        (o.ledger_window_sec ? ` · committed in the last ${fmtDur(o.ledger_window_sec * 1000)}` : "")),
      card("Dead letters", h("span", { id: "dead-letters", class: c.dead_letters ? "bad" : "" }, fmtInt(c.dead_letters)), dl || "none"),
      card("Mergers alive", h("span", { id: "mergers-alive" }, fmtInt(c.mergers.length)), c.mergers.map(m => m.instance).join(", ") || "none"),
      card("Rows stream", fmtBytes(rs.bytes), `${fmtInt(rs.msgs)} msgs · ${byteLimit} · retention ${ageLimit}` + (rs.first_ms ? ` · oldest ${ago(rs.first_ms)}` : ""), usageBar(frac)),
      card("Rows out", h("span", { id: "rows-out" }, fmtInt(t.rows_out)), `of ${fmtInt(t.rows_in)} in · ${fmtInt(t.quarantined)} quarantined`),
    ),
    h("h2", {}, "Throughput of CSV extracted", h("small", {}, "per minute, last hour (UTC)")),
    h("div", { class: "charts" },
      h("div", { class: "panel" }, h("div", { class: "muted" }, "rows / s"), barChart(rate.rows.map(v => v / rate.bin_seconds), rate.start_ms, rate.bin_seconds, "rows per second")),
      h("div", { class: "panel" }, h("div", { class: "muted" }, "MB / s"), barChart(rate.bytes.map(v => v / rate.bin_seconds / 1e6), rate.start_ms, rate.bin_seconds, "MB per second", "bytes"))),
    h("h2", {}, "Partitions", h("small", {}, "merger consumers on the rows stream" + (c.error ? " · last refresh failed: " + c.error : ""))),
    h("table", { id: "partitions" },
      h("tr", {}, h("th", {}, "partition"), h("th", { class: "n" }, "pending"), h("th", { class: "n" }, "un-acked"), h("th", {}, "owner (merger)")),
      c.partitions.map(p => h("tr", {}, h("td", {}, "p" + p.partition), num(fmtInt(p.pending)), num(fmtInt(p.ack_pending)),
        h("td", {}, p.owner || (p.pinned ? "pinned (owner at its next heartbeat)" : h("span", { class: "muted" }, "unowned")))))),
  );
  root.querySelectorAll(".bar > span").forEach(e => { e.style.width = e.dataset.pct + "%"; });
  return o.version;
}

async function tables(root) {
  const d = await get("/api/tables");
  const tbl = d.tables;
  const head = h("tr", {}, h("th", {}, "table"), h("th", {}, "rows per day"), h("th", { class: "n" }, "rows out"), h("th", { class: "n" }, "quarantined"),
    h("th", { class: "n" }, "archives"), h("th", { class: "n" }, "schema"), h("th", {}, "last commit"), h("th", { class: "n" }, "DQ pass rate"));
  const days = d.days;
  fill(root,
    h("h2", {}, "Tables", h("small", {}, `${tbl.length} tables · process dates ${days[0] || "–"} … ${days[days.length - 1] || "–"}`)),
    h("table", { id: "tables" }, head, tbl.map(t => h("tr", { "data-table": t.table },
      h("td", {}, h("b", {}, t.table)),
      h("td", {}, spark(t.rows_by_day)),
      num(fmtInt(t.rows_out), { "data-k": "rows-out" }),
      num(fmtInt(t.quarantined), { "data-k": "quarantined", class: t.quarantined ? "n bad" : "n" }),
      num(fmtInt(t.archives)),
      num("v" + t.schema_version, { "data-k": "schema" }),
      h("td", { title: when(t.last_commit_ms) }, ago(t.last_commit_ms)),
      num(t.quality ? (100 * t.quality.pass_rate).toFixed(1) + " % of " + fmtInt(t.quality.total) : h("span", { class: "muted" }, "no rules"),
        { title: t.quality && t.quality.last_bad ? "last not passed: " + t.quality.last_bad : null })))),
    h("h2", {}, "Rows per day", h("small", {}, "rows written to Parquet, by process date")),
    h("table", { id: "rows-per-day" },
      h("tr", {}, h("th", {}, "table"), days.map(x => h("th", { class: "n" }, x))),
      tbl.map(t => h("tr", {}, h("td", {}, t.table), days.map((x, i) => num(fmtInt(t.rows_by_day[i]), { "data-table": t.table, "data-day": x }))))),
    h("h2", {}, "Schema history", h("small", {}, "from the schema registry; the archive whose batch made each version")),
    h("table", { id: "schemas" },
      h("tr", {}, h("th", {}, "table"), h("th", { class: "n" }, "version"), h("th", {}, "when"), h("th", {}, "what changed"), h("th", {}, "by archive")),
      tbl.flatMap(t => t.schema_history.map((v, i) => h("tr", {},
        h("td", {}, i === 0 ? h("b", {}, t.table) : ""),
        num("v" + v.version),
        h("td", { title: when(v.at_ms) }, ago(v.at_ms)),
        h("td", {}, (v.changes || []).join("; "), i === 0 && t.columns.length ? h("div", { class: "cols" }, t.columns.map(c => `${c.name} ${c.type}`).join(" · ")) : null),
        h("td", {}, v.archive_id ? h("a", { href: "#archives/" + v.archive_id }, v.archive_name || v.archive_id) : h("span", { class: "muted" }, "–")))))),
  );
  return d.version;
}

let archiveQuery = "";
async function archives(root, id) {
  if (id) return archiveDetail(root, id);
  const d = await get("/api/archives?q=" + encodeURIComponent(archiveQuery));
  let input = root.querySelector("#archive-search");
  let list = root.querySelector("#archive-list");
  if (!input) {
    input = h("input", { id: "archive-search", type: "search", placeholder: "search name, id, partner, state, date…", value: archiveQuery });
    let timer;
    input.oninput = () => { clearTimeout(timer); timer = setTimeout(() => { archiveQuery = input.value; refresh(); }, 200); };
    list = h("div", { id: "archive-list" });
    fill(root, h("div", { class: "search" }, input, h("span", { id: "archive-count", class: "muted" })), list);
  }
  root.querySelector("#archive-count").textContent = `${fmtInt(d.matched)} archives` + (d.matched > d.archives.length ? ` (newest ${d.archives.length} shown)` : "");
  fill(list, h("table", { id: "archives" },
    h("tr", {}, h("th", {}, "archive"), h("th", {}, "state"), h("th", {}, "partner"), h("th", {}, "process dates"), h("th", {}, "landed"),
      h("th", { class: "n" }, "landed → done"), h("th", { class: "n" }, "rows in"), h("th", { class: "n" }, "rows out"), h("th", { class: "n" }, "quarantined"), h("th", { class: "n" }, "members rejected / skipped")),
    d.archives.map(a => h("tr", { class: "click", "data-archive": a.id, "data-name": a.name, "data-state": a.state, onclick: () => { location.hash = "#archives/" + a.id; } },
      h("td", {}, h("b", {}, a.name), h("div", { class: "cols" }, a.id), a.reason ? h("div", { class: "bad" }, a.reason) : null),
      h("td", {}, badge(a.state)),
      h("td", {}, a.partner || "–"),
      h("td", {}, a.dates.join(", ")),
      h("td", { title: when(a.landed_ms) }, ago(a.landed_ms)),
      num(a.done_ms && a.landed_ms ? fmtDur(a.done_ms - a.landed_ms) : "–"),
      num(fmtInt(a.rows_in)), num(fmtInt(a.rows_out)), num(fmtInt(a.quarantined)), num(`${a.rejected} / ${a.skipped}`)))));
  return d.version;
}

async function archiveDetail(root, id) {
  const a = await get("/api/archives/" + encodeURIComponent(id));
  const steps = [];
  a.timeline.forEach((st, i) => {
    if (i > 0) steps.push(h("div", { class: "arrow" }, "→", h("div", {}, fmtDur(st.took_ms))));
    steps.push(h("div", { class: "step " + st.step }, h("div", { class: "k" }, st.step), h("div", { class: "muted" }, when(st.at_ms)), st.detail ? h("div", { class: "cols" }, st.detail) : null));
  });
  fill(root,
    h("div", { class: "search" }, h("a", { href: "#archives" }, "← all archives")),
    h("h2", {}, a.name, " ", badge(a.state), h("small", {}, `${a.id}` + (a.attempt ? ` · attempt ${a.attempt}` : "") + ` · ${fmtBytes(a.size)} · partner ${a.partner || "–"}`)),
    a.uri ? h("div", { class: "muted" }, a.uri) : null,
    a.state === "failed" && a.reason ? h("div", { class: "reason", id: "failure" }, "Failed: " + a.reason) : null,
    h("h2", {}, "Timeline"),
    h("div", { class: "timeline", id: "timeline" }, steps),
    h("h2", {}, "Tables"),
    h("table", {}, h("tr", {}, h("th", {}, "table"), h("th", { class: "n" }, "partition"), h("th", { class: "n" }, "rows in"), h("th", { class: "n" }, "rows out"),
      h("th", { class: "n" }, "quarantined"), h("th", { class: "n" }, "CSV"), h("th", { class: "n" }, "objects"), h("th", { class: "n" }, "schema"), h("th", {}, "committed"), h("th", {}, "by merger")),
      a.tables_detail.map(t => h("tr", {}, h("td", {}, t.table), num("p" + t.partition), num(fmtInt(t.rows_in)), num(t.rows_out < 0 ? "pending" : fmtInt(t.rows_out)),
        num(fmtInt(t.quarantined)), num(fmtBytes(t.bytes)), num(fmtInt(t.objects)), num(t.schema_version ? "v" + t.schema_version : "–"),
        h("td", {}, t.committed_ms ? when(t.committed_ms) : "–"), h("td", {}, t.merger || "–")))),
    h("h2", {}, "Members not taken as tables", h("small", {}, `${a.rejected} rejected · ${a.skipped} skipped`)),
    a.members.length ? h("table", { id: "members" }, h("tr", {}, h("th", {}, "member"), h("th", {}, "kind"), h("th", {}, "reason"), h("th", { class: "n" }, "size")),
      a.members.map(m => h("tr", {}, h("td", {}, h("code", {}, m.member)), h("td", {}, m.kind), h("td", {}, m.reason), num(fmtBytes(m.size)))))
      : h("div", { class: "muted" }, "none"),
    a.duplicates && a.duplicates.length ? [h("h2", {}, "Same bytes also seen at"), h("ul", {}, a.duplicates.map(u => h("li", {}, u)))] : null,
    h("h2", {}, "Ledger history"),
    h("table", {}, h("tr", {}, h("th", {}, "state"), h("th", {}, "at"), h("th", {}, "reason")),
      (a.ledger_history || []).map(x => h("tr", {}, h("td", {}, badge(x.state)), h("td", {}, when(x.at_ms)), h("td", {}, x.reason || "")))),
  );
  return a.version;
}

async function dates(root) {
  const d = await get("/api/dates");
  fill(root,
    h("h2", {}, "Process dates", h("small", {}, "readiness and the summary check of each date")),
    h("table", { id: "dates" },
      h("tr", {}, h("th", {}, "date"), h("th", {}, "check"), h("th", {}, "data quality"), h("th", {}, "readiness"), h("th", { class: "n" }, "archives"),
        h("th", { class: "n" }, "rows in"), h("th", { class: "n" }, "rows out"), h("th", { class: "n" }, "quarantined"), h("th", {}, "summary")),
      d.dates.map(x => h("tr", { "data-date": x.date },
        h("td", {}, h("b", {}, x.date)),
        h("td", {}, x.written ? badge(x.check) : h("span", { class: "muted" }, "no summary yet")),
        h("td", {}, x.quality ? badge(x.quality) : h("span", { class: "muted" }, "no rules")),
        h("td", {}, readiness(x)),
        num(fmtInt(x.archives) + (x.pending ? ` (${x.pending} pending)` : ""), { "data-k": "archives" }),
        num(fmtInt(x.rows_in), { "data-k": "rows-in" }), num(fmtInt(x.rows_out), { "data-k": "rows-out" }), num(fmtInt(x.quarantined)),
        h("td", {}, !x.written ? "–" : d.out ? h("a", { href: `/summaries/${x.date}/summary.txt`, target: "_blank" }, "summary.txt") : h("code", {}, x.key))))),
  );
  return d.version;
}

function readiness(x) {
  const parts = [];
  if (x.sources.length === 0) parts.push(x.written ? (x.complete ? "no sources expected" : "incomplete") : "–");
  for (const src of x.sources) {
    const got = (src.in || []).length, miss = (src.missing || []).length, wait = (src.awaited || []).length;
    parts.push(h("div", {}, h("b", {}, src.partner), `: ${got} of ${got + miss + wait} expected in`,
      miss ? h("span", { class: "bad" }, ` · missing ${src.missing.join(", ")}`) : "",
      wait ? ` · awaited ${src.awaited.join(", ")}` : "",
      h("div", { class: "cols" }, (src.deadline_passed ? "deadline passed " : "deadline ") + src.deadline)));
  }
  if (x.sources.length === 0 && x.missing.length) parts.push(h("div", { class: "bad" }, "missing " + x.missing.join(", ")));
  return parts;
}

// ---------- routing and live updates ----------
const views = { overview, tables, archives, dates };
let busy = false, again = false;
async function refresh() {
  if (busy) { again = true; return; }
  busy = true;
  const [name, arg] = (location.hash.slice(1) || "overview").split("/");
  const view = views[name] ? name : "overview";
  document.querySelectorAll("nav a").forEach(a => a.classList.toggle("active", a.dataset.view === view));
  const root = document.getElementById("view");
  if (root.dataset.view !== view + "/" + (arg || "")) { root.replaceChildren(); root.dataset.view = view + "/" + (arg || ""); }
  try {
    const v = await views[view](root, arg);
    document.body.dataset.version = v;
    document.body.dataset.view = view;
  } catch (e) {
    fill(root, h("div", { class: "reason" }, String(e.message || e)));
  }
  busy = false;
  if (again) { again = false; refresh(); }
}
window.addEventListener("hashchange", refresh);

const live = document.getElementById("live");
let lastUpdate = 0;
function connect() {
  const es = new EventSource("/api/live");
  es.addEventListener("change", () => { lastUpdate = Date.now(); live.className = "live on"; live.textContent = "live"; refresh(); });
  es.onerror = () => { live.className = "live off"; live.textContent = "reconnecting…"; };
}
setInterval(() => {
  if (live.className === "live on") live.textContent = "live · updated " + ago(lastUpdate);
  if (!document.hidden && (location.hash || "#overview").startsWith("#overview")) refresh();
}, 5000);
connect();
refresh();
