/**
 * The status page's HTML, script and styles in one string: no build step, no CDN. The server
 * replaces `__INITIAL__` with `{ history, now }` (snapshots of `/status.json`).
 *
 * @module
 */

/** The page. */
export const STATUS_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cretoai node status</title>
<style>
  :root { color-scheme: light; --fg: #1c2430; --muted: #667085; --line: #e4e7ec; --bg: #f7f8fa; }
  * { box-sizing: border-box; }
  body { margin: 0; font: 14px/1.45 system-ui, sans-serif; color: var(--fg); background: var(--bg); }
  header { padding: 16px 24px; background: #101828; color: #fff; }
  header h1 { margin: 0 0 6px; font-size: 18px; font-weight: 600; }
  header dl { display: flex; flex-wrap: wrap; gap: 4px 24px; margin: 0; }
  header dt { color: #98a2b3; font-size: 12px; }
  header dd { margin: 0; font-family: ui-monospace, monospace; font-size: 13px; }
  main { padding: 16px 24px; display: grid; gap: 16px; grid-template-columns: 1fr 1fr; }
  section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 12px 16px; }
  section.wide { grid-column: 1 / -1; }
  h2 { margin: 0 0 8px; font-size: 14px; font-weight: 600; }
  table { width: 100%; border-collapse: collapse; font-size: 13px; }
  th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: left; white-space: nowrap; }
  th { color: var(--muted); font-weight: 500; }
  td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
  td.id { font-family: ui-monospace, monospace; }
  .tag { display: inline-block; padding: 0 6px; border-radius: 4px; background: #eef4ff; color: #3538cd; }
  .tag.relay { background: #fef0c7; color: #93370d; }
  canvas { width: 100%; height: 220px; display: block; }
  .legend { display: flex; flex-wrap: wrap; gap: 4px 14px; margin-top: 6px; font-size: 12px; color: var(--muted); }
  .legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
  #state { color: #98a2b3; } #state.down { color: #f97066; }
  .empty { color: var(--muted); padding: 12px 8px; }
</style>
</head>
<body>
<header>
  <h1>cretoai node <span id="state">live</span></h1>
  <dl>
    <div><dt>peer id</dt><dd id="peer-id"></dd></div>
    <div><dt>addresses</dt><dd id="addresses"></dd></div>
    <div><dt>NAT type</dt><dd id="nat-type"></dd></div>
    <div><dt>uptime</dt><dd id="uptime"></dd></div>
    <div><dt>peers</dt><dd id="peer-count"></dd></div>
  </dl>
</header>
<main>
  <section class="wide">
    <h2>Peers</h2>
    <table id="peers">
      <thead><tr>
        <th>peer</th><th>address</th><th>path</th><th>found by</th><th>direction</th>
        <th class="num">RTT p50 ms</th><th class="num">RTT p99 ms</th>
        <th class="num">msgs sent</th><th class="num">msgs received</th>
        <th class="num">bytes sent</th><th class="num">bytes received</th>
      </tr></thead>
      <tbody></tbody>
    </table>
  </section>
  <section>
    <h2>Round trip (ping p50 per peer, ms)</h2>
    <canvas id="rtt-chart"></canvas><div class="legend" id="rtt-legend"></div>
  </section>
  <section>
    <h2>Messages per second</h2>
    <canvas id="rate-chart"></canvas><div class="legend" id="rate-legend"></div>
  </section>
</main>
<script type="application/json" id="initial">__INITIAL__</script>
<script>
"use strict";
const MAX_HISTORY = 300;
const PALETTE = ["#2e90fa", "#f79009", "#12b76a", "#ee46bc", "#7a5af8", "#f04438", "#06aed4", "#667085"];
const initial = JSON.parse(document.getElementById("initial").textContent);
const history = initial.history;
const colors = new Map();
const colorOf = (id) => {
  if (!colors.has(id)) colors.set(id, PALETTE[colors.size % PALETTE.length]);
  return colors.get(id);
};
const short = (id) => id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : id;
const cell = (row, text, className) => {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
};
const bytes = (n) => n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
const duration = (ms) => {
  const s = Math.floor(ms / 1000);
  return (s >= 3600 ? Math.floor(s / 3600) + " h " : "") + (s >= 60 ? Math.floor(s / 60) % 60 + " min " : "") + s % 60 + " s";
};

function render(now) {
  document.getElementById("peer-id").textContent = now.peerId;
  document.getElementById("addresses").textContent = now.addresses.join(", ");
  document.getElementById("nat-type").textContent = now.natType ?? "not discovered";
  document.getElementById("uptime").textContent = duration(now.uptimeMs);
  document.getElementById("peer-count").textContent = String(now.peers.length);
  const body = document.querySelector("#peers tbody");
  body.replaceChildren();
  if (now.peers.length === 0) {
    const td = body.insertRow().insertCell();
    td.colSpan = 11;
    td.className = "empty";
    td.textContent = "no peers connected";
  }
  for (const p of now.peers) {
    const row = body.insertRow();
    row.dataset.peerId = p.peerId;
    const id = cell(row, short(p.peerId), "id");
    id.title = p.peerId;
    id.style.borderLeft = "4px solid " + colorOf(p.peerId);
    cell(row, p.address);
    const path = cell(row, "");
    const tag = document.createElement("span");
    tag.className = "tag " + p.path;
    tag.textContent = p.path;
    path.append(tag);
    cell(row, p.foundBy);
    cell(row, p.direction);
    cell(row, p.rttP50Ms.toFixed(2), "num");
    cell(row, p.rttP99Ms.toFixed(2), "num");
    cell(row, String(p.messagesSent), "num");
    cell(row, String(p.messagesReceived), "num");
    cell(row, bytes(p.bytesSent), "num");
    cell(row, bytes(p.bytesReceived), "num");
  }
  drawCharts();
}

function rttSeries() {
  const series = new Map();
  for (const s of history) {
    for (const p of s.peers) {
      if (!series.has(p.peerId)) series.set(p.peerId, { label: short(p.peerId), color: colorOf(p.peerId), points: [] });
      series.get(p.peerId).points.push([s.time, p.rttP50Ms]);
    }
  }
  return [...series.values()];
}

function rateSeries() {
  const sent = { label: "sent", color: "#2e90fa", points: [] };
  const received = { label: "received", color: "#12b76a", points: [] };
  for (let i = 1; i < history.length; i++) {
    const a = history[i - 1], b = history[i];
    const seconds = (b.time - a.time) / 1000;
    if (seconds <= 0) continue;
    // Per peer, so that a peer that leaves does not count as a negative rate.
    const before = new Map(a.peers.map((p) => [p.peerId, p]));
    let out = 0, into = 0;
    for (const p of b.peers) {
      const q = before.get(p.peerId);
      out += Math.max(0, p.messagesSent - (q ? q.messagesSent : 0));
      into += Math.max(0, p.messagesReceived - (q ? q.messagesReceived : 0));
    }
    sent.points.push([b.time, out / seconds]);
    received.points.push([b.time, into / seconds]);
  }
  return [sent, received];
}

function drawChart(canvas, legend, series, unit) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 400, height = canvas.clientHeight || 220;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const left = 48, right = 8, top = 8, bottom = 22;
  const all = series.flatMap((s) => s.points);
  const t1 = history.length ? history[history.length - 1].time : Date.now();
  const t0 = Math.min(t1 - 60000, ...all.map((p) => p[0]));
  let max = Math.max(0, ...all.map((p) => p[1]));
  max = max > 0 ? max * 1.15 : 1;
  const x = (t) => left + (t - t0) / Math.max(1, t1 - t0) * (width - left - right);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  g.font = "11px system-ui, sans-serif";
  g.fillStyle = "#667085";
  g.strokeStyle = "#e4e7ec";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = max * i / 4;
    g.beginPath();
    g.moveTo(left, y(v));
    g.lineTo(width - right, y(v));
    g.stroke();
    g.fillText(v < 10 ? v.toFixed(2) : v.toFixed(0), 4, y(v) + 4);
  }
  g.fillText(Math.round((t1 - t0) / 1000) + " s ago", left, height - 6);
  g.fillText("now", width - right - 22, height - 6);
  for (const s of series) {
    g.strokeStyle = s.color;
    g.fillStyle = s.color;
    g.lineWidth = 2;
    g.beginPath();
    s.points.forEach(([t, v], i) => i === 0 ? g.moveTo(x(t), y(v)) : g.lineTo(x(t), y(v)));
    g.stroke();
    const last = s.points[s.points.length - 1];
    if (last) g.fillRect(x(last[0]) - 2, y(last[1]) - 2, 4, 4);
  }
  legend.replaceChildren(...series.map((s) => {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color;
    const last = s.points[s.points.length - 1];
    item.append(swatch, s.label + (last ? " " + last[1].toFixed(2) + " " + unit : ""));
    return item;
  }));
}

function drawCharts() {
  drawChart(document.getElementById("rtt-chart"), document.getElementById("rtt-legend"), rttSeries(), "ms");
  drawChart(document.getElementById("rate-chart"), document.getElementById("rate-legend"), rateSeries(), "msg/s");
}

function push(snapshot) {
  history.push(snapshot);
  while (history.length > MAX_HISTORY) history.shift();
  render(snapshot);
}

const state = document.getElementById("state");
async function poll() {
  try {
    const response = await fetch("status.json", { cache: "no-store" });
    if (!response.ok) throw new Error(String(response.status));
    push(await response.json());
    state.textContent = "live";
    state.className = "";
  } catch {
    state.textContent = "node unreachable";
    state.className = "down";
  }
}
render(initial.now);
setInterval(poll, 1000);
addEventListener("resize", drawCharts);
</script>
</body>
</html>
`;
