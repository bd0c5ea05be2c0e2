// The overview page (/ops): keeps the server-rendered page live. Every 5 s (while the tab is
// visible) it reads /ops/api/overview and updates the status strip, the queues (in place:
// a focused button keeps its focus), the Redis details, failovers and the audit log; every
// 10 s it reads /ops/api/series and redraws the charts. The queue buttons call the queue
// API (pause, resume, purge after typing the queue's name). Text only: never innerHTML.
"use strict";

(function () {
  const f = window.foodapp;
  const root = document.getElementById("overview");
  if (!f || !root) return;
  const el = f.el;
  const dashboard = root.getAttribute("data-dashboard") || "/jobs";

  function humanBytes(count) {
    if (count === null || count === undefined) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let value = count, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
    return unit === 0 ? `${value.toFixed(0)} B` : `${value.toFixed(1)} ${units[unit]}`;
  }

  function setStat(id, kind, value, detail, href) {
    const box = document.getElementById(id);
    if (!box) return;
    box.className = `stat${kind ? " " + kind : ""}`;
    const label = box.querySelector(".label");
    const valueNode = el("span", { className: "value" }, href ? el("a", { href }, value) : value);
    box.replaceChildren(label, valueNode, el("span", { className: "detail" }, detail));
    return valueNode;
  }

  function updateStatus(data) {
    const topology = data.topology || {};
    const redis = setStat("stat-redis", data.ready ? "good" : "bad", data.ready ? "ready" : "not ready", data.reason || "");
    if (redis) redis.classList.add(data.ready ? "ready" : "not-ready");
    const master = setStat("stat-master", topology.role === "master" ? "good" : "bad", topology.master || "unknown",
      `role ${topology.role || "unknown"}`);
    if (master) master.classList.add("mono");

    const replicas = topology.replicas || [];
    const online = replicas.filter(function (r) { return r.state === "online"; }).length;
    const lag = replicas.reduce(function (most, r) { return Math.max(most, Number(r.lag_seconds) || 0); }, 0);
    setStat("stat-replicas", replicas.length ? (online === replicas.length ? "good" : "bad") : "",
      `${online} of ${replicas.length} online`, replicas.length ? `most lag ${lag} s` : "none attached");

    const sentinels = topology.sentinels || [];
    const reachable = sentinels.filter(function (s) { return s.reachable; }).length;
    setStat("stat-sentinels", sentinels.length ? (reachable === sentinels.length ? "good" : "warn") : "",
      sentinels.length ? `${reachable} of ${sentinels.length} reachable` : "none",
      sentinels.length ? "they elect a new master if it fails" : "single Redis: no failover");

    const memory = data.memory || {};
    const percent = memory.used_percent || 0;
    const memoryKind = memory.error || percent >= 90 ? "bad" : percent >= 75 ? "warn" : "good";
    if (memory.error) setStat("stat-memory", memoryKind, "unknown", memory.error);
    else if (memory.max) setStat("stat-memory", memoryKind, `${humanBytes(memory.headroom)} free`,
      `${humanBytes(memory.used)} of ${humanBytes(memory.max)} used (${memory.used_percent} %)`);
    else setStat("stat-memory", memoryKind, `${humanBytes(memory.used)} used`, "no maxmemory: no limit set");

    const workers = data.workers || {};
    setStat("stat-workers", workers.dead || !workers.alive ? "bad" : workers.late ? "warn" : "good",
      `${workers.alive || 0} alive`, `${workers.late || 0} late, ${workers.dead || 0} dead, ${workers.stopped || 0} stopped`,
      "/ops/workers");
  }

  // One queue's row: made once (same markup as the server's), then only its texts and the
  // pause button change, so keyboard focus is never lost to an update.
  function queueRow(name) {
    const token = f.csrfToken();
    const form = el("form", { className: "requeue", method: "post", action: `/ops/queues/${encodeURIComponent(name)}/requeue-dead` },
      el("input", { type: "hidden", name: "csrf_token", value: token }), el("button", { type: "submit" }, ""));
    return el("tr", { "data-queue": name },
      el("td", { "data-label": "queue" }, el("a", { href: `${dashboard}/queues/${encodeURIComponent(name)}` }, name), " ",
        el("span", { className: "badge paused", hidden: true }, "paused")),
      el("td", { "data-label": "queued", className: "queued num" }),
      el("td", { "data-label": "delayed", className: "delayed num" }),
      el("td", { "data-label": "dead letters", className: "dead-letters num" }),
      el("td", { "data-label": "latency", className: "latency num" }),
      el("td", { "data-label": "actions" }, el("div", { className: "actions" },
        el("button", { type: "button", "data-action": "pause", "data-queue": name }, "Pause"),
        el("button", { type: "button", className: "danger", "data-action": "purge", "data-queue": name }, "Purge"),
        form)));
  }

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  function updateQueues(queues) {
    const body = document.querySelector("#queues tbody");
    if (!body) return;
    const seen = new Set();
    for (const queue of queues) {
      seen.add(queue.name);
      let row = Array.from(body.rows).find(function (r) { return r.getAttribute("data-queue") === queue.name; });
      if (!row) { row = queueRow(queue.name); body.append(row); }
      setText(row.querySelector(".queued"), String(queue.queued));
      setText(row.querySelector(".delayed"), String(queue.delayed));
      setText(row.querySelector(".dead-letters"), String(queue.dead));
      setText(row.querySelector(".latency"),
        queue.latency_seconds === null || queue.latency_seconds === undefined ? "–" : `${Number(queue.latency_seconds).toFixed(1)} s`);
      const badge = row.querySelector(".badge.paused");
      badge.hidden = !queue.paused;
      badge.title = queue.paused ? `paused by ${queue.paused.by} at ${queue.paused.at}` : "";
      const toggle = row.querySelector("button[data-action='pause'], button[data-action='resume']");
      if (toggle) {
        const action = queue.paused ? "resume" : "pause";
        if (toggle.getAttribute("data-action") !== action) {
          toggle.setAttribute("data-action", action);
          toggle.textContent = queue.paused ? "Resume" : "Pause";
          toggle.classList.toggle("primary", !!queue.paused);
        }
      }
      const form = row.querySelector("form.requeue");
      if (form) {
        form.hidden = !queue.dead;
        setText(form.querySelector("button"), `Requeue all ${queue.dead} dead letters`);
      }
    }
    Array.from(body.rows).forEach(function (row) {
      if (!seen.has(row.getAttribute("data-queue")) && !row.contains(document.activeElement)) row.remove();
    });
  }

  function fillTable(id, rows, emptyText, columns) {
    const body = document.querySelector(`#${id} tbody`);
    if (!body) return;
    const made = rows.length ? rows : [[el("td", { colspan: columns, className: "muted" }, emptyText)]];
    body.replaceChildren.apply(body, made.map(function (cells) { return el.apply(null, ["tr", {}].concat(cells)); }));
  }

  function updateDetails(data) {
    const topology = data.topology || {};
    const rows = [[el("th", { scope: "row" }, "master"), el("td", {}, `${topology.master || "unknown"} (${topology.role || "unknown"})`)]];
    (topology.replicas || []).forEach(function (r) {
      rows.push([el("th", { scope: "row" }, "replica"), el("td", {}, `${r.address} ${r.state}, lag ${r.lag_seconds} s`)]);
    });
    (topology.sentinels || []).forEach(function (s) {
      rows.push([el("th", { scope: "row" }, "sentinel"), el("td", {}, `${s.address}: ${s.reachable ? "sees master " + s.master : "unreachable"}`)]);
    });
    fillTable("topology", rows, "", 2);

    const memory = data.memory || {};
    const memoryRows = memory.error ? [[el("th", { scope: "row" }, "memory"), el("td", {}, `unknown: ${memory.error}`)]]
      : memory.max ? [
        [el("th", { scope: "row" }, "used"), el("td", {}, `${humanBytes(memory.used)} of ${humanBytes(memory.max)} (maxmemory): ${memory.used_percent} %`)],
        [el("th", { scope: "row" }, "headroom"), el("td", {}, `${humanBytes(memory.headroom)} before Redis refuses writes (maxmemory-policy ${memory.policy}: orders get 503)`)],
      ] : [[el("th", { scope: "row" }, "used"), el("td", {}, `${humanBytes(memory.used)}; no maxmemory set: no limit (see deploy/redis/master.conf)`)]];
    fillTable("memory", memoryRows, "", 2);

    fillTable("failovers", (data.failovers || []).map(function (entry) {
      return [el("td", {}, entry.at), el("td", {}, entry.previous), el("td", {}, entry.master)];
    }), "none seen", 3);

    fillTable("audit", (data.audit || []).map(function (entry) {
      const details = Object.keys(entry).sort().filter(function (key) { return ["at", "user", "action"].indexOf(key) === -1; })
        .map(function (key) { return `${key}=${typeof entry[key] === "object" ? JSON.stringify(entry[key]) : entry[key]}`; }).join(" ");
      return [el("td", { "data-label": "when" }, entry.at), el("td", { "data-label": "who" }, entry.user),
        el("td", { "data-label": "what" }, entry.action), el("td", { "data-label": "details" }, details)];
    }), "nothing yet", 4);
  }

  function perQueue(times, byQueue) {
    return Object.keys(byQueue || {}).sort().map(function (name) { return { name, values: byQueue[name] }; });
  }

  function drawCharts(series) {
    const rates = series.rates, samples = series.samples, refused = series.enqueue_503;
    const chart = function (id, options) {
      const box = document.getElementById(id);
      if (box) f.lineChart(box, options);
    };
    chart("chart-rates", {
      label: "jobs per second", unit: "/s", times: rates.times, min: 0.1,
      series: [{ name: "processed", values: rates.processed }, { name: "failed", values: rates.failed },
        { name: "retried", values: rates.retried }],
    });
    chart("chart-depth", { label: "jobs waiting per queue", times: samples.times, min: 1, series: perQueue(samples.times, samples.depth),
      empty: "no samples yet" });
    chart("chart-latency", { label: "seconds the oldest job waited, per queue", unit: " s", times: samples.times, min: 1,
      series: perQueue(samples.times, samples.latency), empty: "no samples yet" });
    chart("chart-workers", { label: "live workers", times: samples.times, min: 1,
      series: [{ name: "workers", values: samples.workers }], empty: "no samples yet" });
    // Every order and job runs its Redis commands on the master's one core: at 100 % the
    // whole deployment is at its ceiling, however many hosts it has (docs/production.md).
    chart("chart-redis-cpu", { label: "% of one core the Redis master used", unit: " %", times: samples.times, min: 100,
      series: [{ name: "master", values: samples.redis_cpu_percent || [] }], empty: "no samples yet" });
    chart("chart-503", { label: "orders refused with 503 per minute", times: refused.times, min: 1,
      series: [{ name: "503s", values: refused.counts }] });
  }

  let ticks = 0;
  async function refresh() {
    const data = await f.getJSON("/ops/api/overview");
    updateStatus(data);
    updateQueues(data.queues || []);
    updateDetails(data);
    if (ticks++ % 2 === 0) drawCharts(await f.getJSON("/ops/api/series?minutes=60"));
  }

  const poller = f.poll(refresh, 5000, { immediate: true });

  async function act(button) {
    const queue = button.getAttribute("data-queue"), action = button.getAttribute("data-action");
    let body = {};
    if (action === "purge") {
      const typed = window.prompt(`Purge removes every job waiting in ${queue}: they are marked cancelled and never run ` +
        `(delayed jobs and dead letters stay). This cannot be undone. Type the queue's name to confirm:`, "");
      if (typed === null) return;
      if (typed.trim() !== queue) {
        f.toast(`Nothing purged: you typed "${typed}", not "${queue}".`, "error");
        return;
      }
      body = { confirm: queue };
    }
    // Busy, not disabled: a disabled button loses the keyboard's focus, and the page would
    // give it back only after the queues and the charts are drawn again.
    button.setAttribute("aria-disabled", "true");
    try {
      const result = await f.postJSON(`/ops/api/queues/${encodeURIComponent(queue)}/${action}`, body);
      f.toast((result && result.message) || `${action} ${queue}: done`, "ok");
      ticks = 0;  // redraw the charts too
      await poller.now();
    } catch (error) {
      f.toast(`Could not ${action} ${queue}: ${error.message}`, "error");
    } finally {
      button.removeAttribute("aria-disabled");
      if (document.activeElement === document.body || !document.activeElement) button.focus();
    }
  }

  document.getElementById("queues").addEventListener("click", function (event) {
    const button = event.target.closest("button[data-action]");
    if (button && !button.disabled && button.getAttribute("aria-disabled") !== "true") act(button);
  });
})();
