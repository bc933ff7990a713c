/**
 * The status page itself: HTML, CSS and the browser script, served by service/status.ts from
 * memory, plus the charting library, so the page works with no network but ours (no CDN).
 *
 * Charts: uPlot (npm `uplot`, pinned in deno.json), because it is small (51 kB minified, 22 kB
 * gzipped, no dependencies), made for exactly this (time series on a canvas, cheap to update
 * every second with 900 points a series) and kept up (MIT, regular releases since 2019). Chart.js
 * is four times the size for features the page does not use; a framework would pay for nothing
 * here either: three tables and two charts are a few DOM calls.
 *
 * The library's files come in as `with { type: "text" }` imports, which Deno 2.9 takes without a
 * flag: they are part of the module graph, so `deno run` needs no read permission for them and
 * `deno compile` embeds them like any module (reading the file at `import.meta.resolve(...)` would
 * need `--allow-read` of Deno's cache, and a compiled binary would have no such file).
 *
 * The script keeps to what every current browser runs, without a build step. It computes rates
 * with `sampleBetween` from status_history.ts, whose source is sent along, so the page and the
 * server's history cannot disagree. Every text goes in through `textContent` (user names come
 * from the API and are not trusted as HTML).
 * @module
 */
import uplotScript from "uplot/dist/uPlot.iife.min.js" with { type: "text" };
import uplotStyle from "uplot/dist/uPlot.min.css" with { type: "text" };
import { sampleBetween } from "./status_history.ts";

/** One file of the page. */
export interface StatusAsset {
  readonly type: string;
  readonly body: string;
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>ssdeno status</title>
<link rel="stylesheet" href="uplot.css">
<link rel="stylesheet" href="style.css">
<script src="uplot.js" defer></script>
<script src="app.js" defer></script>
</head>
<body>
<a class="skip" href="#users">Skip to the users</a>
<header>
  <h1>ssdeno status</h1>
  <p id="about">Loading…</p>
  <p id="connection" role="status">Connecting…</p>
</header>
<main>
<section aria-labelledby="now-heading">
  <h2 id="now-heading">Now</h2>
  <dl class="cards">
    <div><dt>Live sessions</dt><dd id="live">–</dd></div>
    <div><dt>Download</dt><dd id="rate-down">–</dd></div>
    <div><dt>Upload</dt><dd id="rate-up">–</dd></div>
    <div><dt>UDP associations</dt><dd id="udp">–</dd></div>
    <div><dt>Down since start</dt><dd id="total-down">–</dd></div>
    <div><dt>Up since start</dt><dd id="total-up">–</dd></div>
    <div><dt>Uptime</dt><dd id="uptime">–</dd></div>
  </dl>
</section>
<section aria-labelledby="throughput-heading">
  <h2 id="throughput-heading">Throughput, last 15 minutes</h2>
  <p class="controls"><label for="throughput-user">Show</label>
  <select id="throughput-user"><option value="">All users</option></select></p>
  <figure>
    <div id="throughput-chart" class="chart" role="img" aria-labelledby="throughput-caption"></div>
    <figcaption id="throughput-caption">No data yet.</figcaption>
  </figure>
</section>
<section aria-labelledby="outcomes-heading">
  <h2 id="outcomes-heading">Session outcomes, last 15 minutes</h2>
  <p class="hint">TCP sessions ended per second. <strong>Probes</strong> are first flights that
  did not authenticate or parse (ERR_CIPHER, ERR_READ_ADDRESS): someone without the key is
  testing the port. <strong>Replays</strong> (ERR_REPLAY) resend a recorded client's bytes.</p>
  <figure>
    <div id="outcomes-chart" class="chart" role="img" aria-labelledby="outcomes-caption"></div>
    <figcaption id="outcomes-caption">No data yet.</figcaption>
  </figure>
  <div class="scroll" role="region" aria-labelledby="statuses-caption" tabindex="0">
  <table id="statuses">
    <caption id="statuses-caption">TCP sessions ended since start, by status</caption>
    <thead><tr><th scope="col">Status</th><th scope="col">Group</th>
    <th scope="col" class="num">Sessions</th></tr></thead>
    <tbody></tbody>
  </table>
  </div>
</section>
<section id="users" aria-labelledby="users-heading" tabindex="-1">
  <h2 id="users-heading">Users</h2>
  <p id="today-since" class="hint"></p>
  <div class="scroll" role="region" aria-labelledby="users-caption" tabindex="0">
  <table id="users-table">
    <caption id="users-caption">Traffic by user (sortable: use the column buttons)</caption>
    <thead><tr>
      <th scope="col"><button type="button" data-sort="name">User</button></th>
      <th scope="col"><button type="button" data-sort="listener">Listener</button></th>
      <th scope="col" class="num"><button type="button" data-sort="todayDown">Down today</button></th>
      <th scope="col" class="num"><button type="button" data-sort="todayUp">Up today</button></th>
      <th scope="col" class="num"><button type="button" data-sort="down">Down total</button></th>
      <th scope="col" class="num"><button type="button" data-sort="up">Up total</button></th>
      <th scope="col" class="num"><button type="button" data-sort="sessions">Sessions</button></th>
      <th scope="col"><button type="button" data-sort="lastSeen">Last seen</button></th>
      <th scope="col"><button type="button" data-sort="limit">Data limit used</button></th>
    </tr></thead>
    <tbody></tbody>
  </table>
  </div>
  <p id="users-omitted" class="hint" hidden></p>
</section>
<section aria-labelledby="listeners-heading">
  <h2 id="listeners-heading">Listeners</h2>
  <div class="scroll" role="region" aria-labelledby="listeners-caption" tabindex="0">
  <table id="listeners">
    <caption id="listeners-caption">Listeners running now</caption>
    <thead><tr><th scope="col">Address</th><th scope="col">Method</th><th scope="col">Mode</th>
    <th scope="col" class="num">Users</th><th scope="col" class="num">Live sessions</th></tr></thead>
    <tbody></tbody>
  </table>
  </div>
</section>
<section id="upstreams-section" aria-labelledby="upstreams-heading" hidden>
  <h2 id="upstreams-heading">Servers</h2>
  <div class="scroll" role="region" aria-labelledby="upstreams-caption" tabindex="0">
  <table id="upstreams">
    <caption id="upstreams-caption">Upstream servers, as the balancer last saw them</caption>
    <thead><tr><th scope="col">Server</th><th scope="col">Health</th>
    <th scope="col" class="num">Latency</th><th scope="col">Last error</th></tr></thead>
    <tbody></tbody>
  </table>
  </div>
</section>
<section id="fleet-section" aria-labelledby="fleet-heading" hidden>
  <h2 id="fleet-heading">Fleet</h2>
  <p id="fleet-state"></p>
  <div class="scroll" role="region" aria-labelledby="fleet-caption" tabindex="0">
  <table id="fleet">
    <caption id="fleet-caption">Nodes with a live heartbeat</caption>
    <thead><tr><th scope="col">Node</th><th scope="col" class="num">Live sessions</th>
    <th scope="col">Last heartbeat</th></tr></thead>
    <tbody></tbody>
  </table>
  </div>
</section>
</main>
<footer><p>Updated every second. Bytes are plaintext relayed, TCP and UDP.</p></footer>
</body>
</html>
`;

const STYLE = `
:root {
  color-scheme: light;
  --text: #1a1a1a;
  --muted: #4d4d4d;
  --line: #d0d4d9;
  --card: #f3f5f7;
  --accent: #1f5fbf;
  --up: #1f5fbf;
  --down: #0f7b3f;
  --bad: #b3261e;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  line-height: 1.45;
  color: var(--text);
  background: #fff;
}
body { margin: 0 auto; max-width: 84rem; padding: 0 1rem 2rem; }
h1 { font-size: 1.6rem; margin: 1rem 0 0.25rem; }
h2 { font-size: 1.2rem; margin: 2rem 0 0.5rem; }
header p { margin: 0.2rem 0; color: var(--muted); }
#connection { font-weight: 600; }
#connection.live { color: var(--down); }
#connection.lost { color: var(--bad); }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 0.5rem; background: #fff; padding: 0.5rem; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(9.5rem, 1fr));
  gap: 0.6rem; margin: 0; }
.cards div { background: var(--card); border-radius: 6px; padding: 0.6rem 0.8rem; }
.cards dt { font-size: 0.85rem; color: var(--muted); }
.cards dd { margin: 0; font-size: 1.35rem; font-weight: 600; font-variant-numeric: tabular-nums; }
.hint { color: var(--muted); font-size: 0.9rem; max-width: 60rem; }
.controls label { margin-right: 0.4rem; }
select, button { font: inherit; }
select { padding: 0.25rem; }
figure { margin: 0.5rem 0 1rem; }
figcaption { color: var(--muted); font-size: 0.9rem; }
.chart { width: 100%; min-height: 260px; }
.uplot { width: 100%; }
.u-legend { font-size: 0.85rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
caption { text-align: left; color: var(--muted); font-size: 0.9rem; padding: 0.3rem 0; }
th, td { text-align: left; padding: 0.35rem 0.5rem; border-bottom: 1px solid var(--line);
  white-space: nowrap; }
th.num, td.num { text-align: right; }
thead th { font-weight: 600; background: var(--card); }
th button { background: none; border: 0; padding: 0.1rem 0; font-weight: 600; cursor: pointer;
  color: var(--text); text-align: inherit; }
th button::after { content: " \\2195"; color: var(--muted); }
th[aria-sort="ascending"] button::after { content: " \\2191"; color: var(--text); }
th[aria-sort="descending"] button::after { content: " \\2193"; color: var(--text); }
meter { width: 3.5rem; vertical-align: middle; margin-right: 0.4rem; }
.health-up { color: var(--down); font-weight: 600; }
.health-down { color: var(--bad); font-weight: 600; }
.health-unknown { color: var(--muted); }
footer { margin-top: 2rem; color: var(--muted); font-size: 0.85rem; }
@media (max-width: 40rem) {
  body { padding: 0 0.6rem 1.5rem; }
  h1 { font-size: 1.35rem; }
  .cards dd { font-size: 1.15rem; }
  th, td { padding: 0.3rem 0.4rem; }
}
`;

/**
 * The browser script. Plain script (no modules, no build), no template literals (this is one).
 * `window.ssdenoStatus` exposes its state, for the browser tests and for anyone curious.
 */
const APP = `"use strict";
${sampleBetween.toString()}
(function () {
  var GROUPS = [
    { key: "ok", label: "OK", color: "#0f7b3f" },
    { key: "probe", label: "Probes", color: "#b3261e" },
    { key: "replay", label: "Replays", color: "#9a4a00" },
    { key: "auth", label: "Client errors", color: "#6a3fb5" },
    { key: "timeout", label: "Timeouts", color: "#55595f" },
    { key: "other", label: "Other errors", color: "#0b6e99" },
  ];
  var GROUP_OF = {
    OK: "ok", ERR_CIPHER: "probe", ERR_READ_ADDRESS: "probe", ERR_REPLAY: "replay",
    ERR_AUTH: "auth", ERR_CLIENT_PROTOCOL: "auth", ERR_TIMEOUT: "timeout",
  };
  var WINDOW_S = 900;
  var MIN_WINDOW_S = 60;
  // Whole numbers on the outcomes' axis: sessions come one at a time.
  var COUNT_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 1e6];
  var state = {
    samples: [],
    capacity: 900,
    maxUsers: 64,
    prev: null,
    snapshot: null,
    sort: { key: "todayDown", dir: -1 },
    user: "",
    userKeys: "",
    connection: "",
    charts: {},
    updates: 0,
  };
  window.ssdenoStatus = state;

  function $(id) { return document.getElementById(id); }

  function formatBytes(n) {
    if (typeof n !== "number" || !isFinite(n)) return "–";
    var units = ["B", "kB", "MB", "GB", "TB", "PB"];
    var i = 0;
    while (Math.abs(n) >= 1000 && i < units.length - 1) { n /= 1000; i++; }
    if (i === 0) return Math.round(n) + " B";
    return n.toFixed(n < 10 ? 2 : n < 100 ? 1 : 0) + " " + units[i];
  }
  function formatRate(n) { return formatBytes(n) + "/s"; }
  function formatDuration(seconds) {
    var s = Math.max(0, Math.floor(seconds));
    var d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600);
    var m = Math.floor(s % 3600 / 60), r = s % 60;
    if (d > 0) return d + " d " + h + " h";
    if (h > 0) return h + " h " + m + " min";
    if (m > 0) return m + " min " + r + " s";
    return r + " s";
  }
  function formatTime(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }
  function cell(row, text, className) {
    var td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    row.appendChild(td);
    return td;
  }
  function setText(id, text) {
    var el = $(id);
    if (el.textContent !== text) el.textContent = text;
  }
  function setConnection(text, className) {
    if (state.connection === text) return;
    state.connection = text;
    var el = $("connection");
    el.textContent = text;
    el.className = className;
  }

  // Charts
  function chartOptions(el, series, format, minMax, increments) {
    var yAxis = {
      stroke: "#333", grid: { stroke: "#e3e6ea" }, ticks: { stroke: "#c9ced4" }, size: 78,
      values: function (u, values) { return values.map(format); },
    };
    if (increments) yAxis.incrs = increments;
    return {
      width: Math.max(el.clientWidth, 280),
      height: 220,
      scales: {
        x: {
          time: true,
          // The last 15 minutes, or less while there is less history (a minute at least).
          range: function () {
            var end = state.snapshot ? state.snapshot.counters.at / 1000 : Date.now() / 1000;
            var first = state.samples.length > 0 ? state.samples[0].t : end;
            return [end - Math.min(Math.max(end - first, MIN_WINDOW_S), WINDOW_S), end];
          },
        },
        y: { range: function (u, min, max) { return [0, Math.max(max, minMax) * 1.1]; } },
      },
      series: [{ label: "Time" }].concat(series),
      axes: [
        { stroke: "#333", grid: { stroke: "#e3e6ea" }, ticks: { stroke: "#c9ced4" } },
        yAxis,
      ],
      legend: { live: true },
    };
  }
  function makeCharts() {
    var tp = $("throughput-chart");
    state.charts.throughput = new uPlot(chartOptions(tp, [
      { label: "Download", stroke: "#0f7b3f", width: 2, fill: "rgba(15,123,63,0.10)",
        value: function (u, v) { return v == null ? "–" : formatRate(v); } },
      { label: "Upload", stroke: "#1f5fbf", width: 2,
        value: function (u, v) { return v == null ? "–" : formatRate(v); } },
    ], formatRate, 1000), [[], [], []], tp);
    var oc = $("outcomes-chart");
    state.charts.outcomes = new uPlot(chartOptions(oc, GROUPS.map(function (g) {
      return { label: g.label, stroke: g.color, width: 2, paths: uPlot.paths.stepped({ align: 1 }),
        value: function (u, v) { return v == null ? "–" : String(v); } };
    }), function (v) { return String(v); }, 1, COUNT_STEPS), [[]].concat(GROUPS.map(function () {
      return [];
    })), oc);
    if (typeof ResizeObserver === "function") {
      new ResizeObserver(function () {
        [["throughput", tp], ["outcomes", oc]].forEach(function (pair) {
          var width = Math.max(pair[1].clientWidth, 280);
          var chart = state.charts[pair[0]];
          if (chart.width !== width) chart.setSize({ width: width, height: 220 });
        });
      }).observe(document.body);
    }
  }
  function peak(values) {
    var max = 0;
    for (var i = 0; i < values.length; i++) if (values[i] > max) max = values[i];
    return max;
  }
  function drawCharts() {
    var samples = state.samples, key = state.user;
    var xs = [], up = [], down = [];
    var groups = GROUPS.map(function () { return []; });
    for (var i = 0; i < samples.length; i++) {
      var s = samples[i];
      xs.push(s.t);
      if (key) {
        var u = s.users[key];
        up.push(u ? u[0] : 0);
        down.push(u ? u[1] : 0);
      } else {
        up.push(s.up);
        down.push(s.down);
      }
      for (var g = 0; g < GROUPS.length; g++) groups[g].push(s.outcomes[g] || 0);
    }
    state.charts.throughput.setData([xs, down, up]);
    state.charts.outcomes.setData([xs].concat(groups));
    var last = samples.length - 1;
    var who = key ? "User " + userLabel(key) : "All users";
    setText("throughput-caption", samples.length === 0 ? "No data yet." :
      who + ". Now: download " + formatRate(down[last]) + ", upload " + formatRate(up[last]) +
      ". Highest in the last 15 minutes: download " + formatRate(peak(down)) + ", upload " +
      formatRate(peak(up)) + ".");
    var totals = groups.map(function (values) {
      return values.reduce(function (a, b) { return a + b; }, 0);
    });
    setText("outcomes-caption", samples.length === 0 ? "No data yet." :
      "Ended in the last 15 minutes: " + GROUPS.map(function (g, i) {
        return totals[i] + " " + g.label.toLowerCase();
      }).join(", ") + ".");
  }

  // Tables
  function userLabel(key) {
    var users = state.snapshot ? state.snapshot.users : [];
    for (var i = 0; i < users.length; i++) {
      if (users[i].key === key) return nameOf(users[i]);
    }
    return key;
  }
  function nameOf(user) {
    var several = state.snapshot && state.snapshot.listeners.length > 1;
    var name = user.name === null ? "(listener " + user.listener + ")" : user.name;
    return several && user.name !== null ? name + " on " + user.listener : name;
  }
  function sortValue(user, key) {
    if (key === "name") return user.name === null ? "" : user.name.toLowerCase();
    if (key === "limit") return user.dataLimit ? user.used / user.dataLimit : -1;
    if (key === "lastSeen") return user.lastSeen || 0;
    return user[key];
  }
  function renderUsers(snapshot) {
    var rows = snapshot.users.slice();
    var sort = state.sort;
    rows.sort(function (a, b) {
      var x = sortValue(a, sort.key), y = sortValue(b, sort.key);
      if (x < y) return -sort.dir;
      if (x > y) return sort.dir;
      return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
    });
    var body = document.createElement("tbody");
    var now = snapshot.counters.at;
    rows.forEach(function (user) {
      var tr = document.createElement("tr");
      tr.dataset.key = user.key;
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = user.name === null ? "(single key)" : user.name;
      tr.appendChild(th);
      cell(tr, user.listener);
      cell(tr, formatBytes(user.todayDown), "num");
      cell(tr, formatBytes(user.todayUp), "num");
      cell(tr, formatBytes(user.down), "num");
      cell(tr, formatBytes(user.up), "num");
      cell(tr, String(user.sessions), "num");
      var seen = cell(tr, user.lastSeen ? formatDuration((now - user.lastSeen) / 1000) + " ago" :
        user.name === null ? "–" : "never");
      if (user.lastSeen) seen.title = new Date(user.lastSeen).toLocaleString();
      var limit = cell(tr, "");
      if (user.dataLimit) {
        var share = Math.min(user.used / user.dataLimit, 1);
        var meter = document.createElement("meter");
        meter.min = 0;
        meter.max = 1;
        meter.low = 0.8;
        meter.high = 0.95;
        meter.optimum = 0;
        meter.value = share;
        meter.setAttribute("aria-hidden", "true");
        limit.appendChild(meter);
        limit.appendChild(document.createTextNode(Math.round(user.used / user.dataLimit * 100) +
          " % of " + formatBytes(user.dataLimit)));
        limit.title = formatBytes(user.used) + " used";
      } else {
        limit.textContent = "no limit";
      }
      body.appendChild(tr);
    });
    var table = $("users-table");
    table.replaceChild(body, table.tBodies[0]);
    var omitted = $("users-omitted");
    omitted.hidden = snapshot.usersOmitted === 0;
    omitted.textContent = snapshot.usersOmitted + " less active users are not listed.";
  }
  function renderSortState() {
    var buttons = document.querySelectorAll("#users-table th button");
    for (var i = 0; i < buttons.length; i++) {
      var th = buttons[i].parentElement;
      if (buttons[i].dataset.sort === state.sort.key) {
        th.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    }
  }
  function renderUserChoice(snapshot) {
    var keys = snapshot.users.map(function (u) { return u.key; }).join("\\n");
    if (keys === state.userKeys) return;
    state.userKeys = keys;
    var select = $("throughput-user");
    while (select.options.length > 1) select.remove(1);
    snapshot.users.forEach(function (user) {
      var option = document.createElement("option");
      option.value = user.key;
      option.textContent = nameOf(user);
      select.appendChild(option);
    });
    var still = snapshot.users.some(function (u) { return u.key === state.user; });
    if (!still) state.user = "";
    select.value = state.user;
  }
  function fillTable(id, rows) {
    var body = document.createElement("tbody");
    rows.forEach(function (values) {
      var tr = document.createElement("tr");
      values.forEach(function (value, i) {
        var td = cell(tr, value.text, value.className);
        if (i === 0) {
          var th = document.createElement("th");
          th.scope = "row";
          th.textContent = value.text;
          tr.replaceChild(th, td);
        }
      });
      body.appendChild(tr);
    });
    var table = $(id);
    table.replaceChild(body, table.tBodies[0]);
  }
  function render(snapshot) {
    var c = snapshot.counters;
    var last = state.samples[state.samples.length - 1];
    setText("about", snapshot.role + " · ssdeno " + snapshot.version + " · " +
      snapshot.workers + (snapshot.workers === 1 ? " worker" : " workers") + " · started " +
      new Date(snapshot.startedAt).toLocaleString());
    setText("live", String(c.live));
    setText("rate-down", last ? formatRate(last.down) : "–");
    setText("rate-up", last ? formatRate(last.up) : "–");
    setText("udp", String(snapshot.udpAssociations));
    setText("total-down", formatBytes(c.down));
    setText("total-up", formatBytes(c.up));
    setText("uptime", formatDuration((c.at - snapshot.startedAt) / 1000));
    setText("today-since", "Today counts from " + formatTime(snapshot.todaySince) +
      (snapshot.todaySince > snapshot.startedAt ? " (local midnight)." : " (the start)."));
    renderUserChoice(snapshot);
    renderUsers(snapshot);
    var statuses = Object.keys(snapshot.statuses).filter(function (s) {
      return snapshot.statuses[s] > 0 || s === "OK";
    });
    fillTable("statuses", statuses.map(function (s) {
      var group = GROUPS.filter(function (g) { return g.key === (GROUP_OF[s] || "other"); })[0];
      return [{ text: s }, { text: group.label }, { text: String(snapshot.statuses[s]), className: "num" }];
    }));
    fillTable("listeners", snapshot.listeners.map(function (l) {
      return [{ text: l.address }, { text: l.method }, { text: l.mode },
        { text: String(l.users), className: "num" }, { text: String(l.live), className: "num" }];
    }));
    $("upstreams-section").hidden = snapshot.upstreams.length === 0;
    fillTable("upstreams", snapshot.upstreams.map(function (u) {
      return [{ text: u.name }, { text: u.health, className: "health-" + u.health },
        { text: u.latencyMs === null ? "–" : u.latencyMs + " ms", className: "num" },
        { text: u.lastError || "" }];
    }));
    var fleet = snapshot.fleet;
    $("fleet-section").hidden = !fleet;
    if (fleet) {
      setText("fleet-state", "This node: " + fleet.node + ". Redis: " +
        (fleet.up ? "reachable" : "unreachable (serving known users; counts kept locally)") +
        ". Bytes not yet in Redis: " + formatBytes(fleet.unflushedBytes) + ".");
      fillTable("fleet", fleet.nodes.map(function (n) {
        return [{ text: n.node + (n.node === fleet.node ? " (this node)" : "") },
          { text: String(n.load), className: "num" }, { text: formatTime(n.seenAt) }];
      }));
    }
    drawCharts();
  }

  // Feed
  function onHistory(event) {
    var history = JSON.parse(event.data);
    state.capacity = history.capacity;
    state.maxUsers = history.maxUsers;
    state.samples = history.samples;
    state.prev = history.counters;
  }
  function onSnapshot(event) {
    var snapshot = JSON.parse(event.data);
    var counters = snapshot.counters;
    if (state.prev && counters.at > state.prev.at) {
      state.samples.push(sampleBetween(state.prev, counters, state.maxUsers));
      if (state.samples.length > state.capacity) {
        state.samples.splice(0, state.samples.length - state.capacity);
      }
    }
    if (!state.prev || counters.at >= state.prev.at) state.prev = counters;
    state.snapshot = snapshot;
    state.updates++;
    render(snapshot);
  }
  function connect() {
    var source = new EventSource("events");
    source.addEventListener("history", onHistory);
    source.addEventListener("snapshot", onSnapshot);
    source.addEventListener("open", function () { setConnection("Live", "live"); });
    source.addEventListener("error", function () {
      if (source.readyState === EventSource.CLOSED) {
        setConnection("Disconnected: reload the page to try again", "lost");
      } else {
        setConnection("Reconnecting…", "lost");
      }
    });
    state.source = source;
  }

  document.querySelectorAll("#users-table th button").forEach(function (button) {
    button.addEventListener("click", function () {
      var key = button.dataset.sort;
      var numeric = key !== "name" && key !== "listener";
      if (state.sort.key === key) state.sort.dir = -state.sort.dir;
      else state.sort = { key: key, dir: numeric ? -1 : 1 };
      renderSortState();
      if (state.snapshot) renderUsers(state.snapshot);
    });
  });
  $("throughput-user").addEventListener("change", function (event) {
    state.user = event.target.value;
    drawCharts();
  });
  renderSortState();
  makeCharts();
  connect();
})();
`;

/** The page's files by name (under `/status/`); `index.html` is the page itself. */
export const STATUS_ASSETS: Readonly<Record<string, StatusAsset>> = {
  "index.html": { type: "text/html; charset=utf-8", body: PAGE },
  "style.css": { type: "text/css; charset=utf-8", body: STYLE },
  "app.js": { type: "text/javascript; charset=utf-8", body: APP },
  "uplot.js": { type: "text/javascript; charset=utf-8", body: uplotScript },
  "uplot.css": { type: "text/css; charset=utf-8", body: uplotStyle },
};
