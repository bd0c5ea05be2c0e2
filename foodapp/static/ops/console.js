// The operations console's shared helpers: every /ops page loads this first (deferred), then
// its own script, which uses window.foodapp:
//
//   foodapp.getJSON(url)            -> parsed JSON; throws Error(server's message) on 4xx/5xx
//   foodapp.postJSON(url, body)     -> the same for a POST with the page's CSRF token
//   foodapp.poll(fn, ms)            -> calls fn every ms while the tab is visible; {stop(), now()}
//   foodapp.lineChart(el, options)  -> draws a small SVG line chart into el (see below)
//   foodapp.toast(text, kind)       -> the status line for an action's result ("ok" | "error")
//   foodapp.el(tag, attrs, ...kids) -> a DOM element (text children are text, never HTML)
//   foodapp.format(n), foodapp.clock(epochSeconds)
//
// No inline script anywhere (the Content-Security-Policy); data goes in as text, never HTML.
"use strict";

(function () {
  document.documentElement.classList.add("js");

  function csrfToken() {
    return (document.body && document.body.getAttribute("data-csrf-token")) || "";
  }

  // A response to JSON, or an Error carrying the server's own message (foodapp's errors are
  // {"error": name, "message": what to do}).
  async function parse(response) {
    const type = response.headers.get("Content-Type") || "";
    let body = null;
    if (type.indexOf("json") !== -1) {
      try { body = await response.json(); } catch (ignored) { body = null; }
    }
    if (!response.ok) {
      const text = body && body.message ? body.message
        : `the server answered ${response.status} ${response.statusText || ""}`.trim();
      const error = new Error(text);
      error.status = response.status;
      error.body = body;
      throw error;
    }
    return body;
  }

  async function send(url, init) {
    let response;
    try {
      response = await fetch(url, Object.assign({ credentials: "same-origin", cache: "no-store" }, init));
    } catch (cause) {
      throw new Error(`the server did not answer (${cause.message}): check that foodapp's web process runs, then try again`);
    }
    return parse(response);
  }

  function getJSON(url) {
    return send(url, { headers: { Accept: "application/json" } });
  }

  function postJSON(url, body) {
    return send(url, {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": csrfToken() },
      body: JSON.stringify(body || {}),
    });
  }

  // Calls fn now-ish and then every ms, never two at once, and not at all while the tab is
  // hidden (document.hidden): a background tab costs the server nothing. Coming back
  // refreshes at once. An element with id "live" says when the page was last updated.
  function poll(fn, ms, options) {
    const opts = options || {};
    const interval = Math.max(Number(ms) || 5000, 500);
    let timer = null, running = false, stopped = false;
    const PAUSED = "Live updates paused while this tab is hidden.";

    function live(text, failed) {
      const status = document.getElementById("live");
      if (!status) return;
      status.textContent = text;
      status.classList.toggle("error", !!failed);
    }

    function schedule(delay) {
      if (stopped || document.hidden || running || timer !== null) return;
      timer = setTimeout(tick, delay);
    }

    async function tick() {
      timer = null;
      if (stopped || document.hidden || running) return;
      running = true;
      try {
        await fn();
        live(document.hidden ? PAUSED
          : `Live: updated ${clock(Date.now() / 1000)}, every ${interval / 1000} s while this tab is open.`, false);
      } catch (error) {
        live(`Live updates failed: ${error.message} (trying again every ${interval / 1000} s).`, true);
        if (opts.onError) opts.onError(error);
      } finally {
        running = false;
      }
      schedule(interval);
    }

    document.addEventListener("visibilitychange", function () {
      if (stopped) return;
      if (document.hidden) {
        clearTimeout(timer);
        timer = null;
        live(PAUSED, false);
      } else {
        clearTimeout(timer);
        timer = null;
        tick();
      }
    });
    schedule(opts.immediate ? 0 : interval);
    return {
      stop() { stopped = true; clearTimeout(timer); timer = null; },
      now() { clearTimeout(timer); timer = null; return tick(); },
    };
  }

  function el(tag, attrs) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name === "className") node.className = value;
      else if (name === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (let i = 2; i < arguments.length; i++) {
      const child = arguments[i];
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function format(value, digits) {
    if (value === null || value === undefined || Number.isNaN(value)) return "–";
    const d = digits === undefined ? (Math.abs(value) >= 100 || Number.isInteger(value) ? 0 : Math.abs(value) >= 10 ? 1 : 2) : digits;
    return Number(value).toLocaleString(undefined, { maximumFractionDigits: d, minimumFractionDigits: 0 });
  }

  function clock(epochSeconds) {
    const t = new Date(epochSeconds * 1000);
    return `${String(t.getHours()).padStart(2, "0")}:${String(t.getMinutes()).padStart(2, "0")}:${String(t.getSeconds()).padStart(2, "0")}`;
  }

  // The status line for an action's result; it stays a few seconds (errors longer).
  let toastTimer = null;
  function toast(text, kind) {
    const box = document.getElementById("toast");
    if (!box) return;
    box.textContent = text;
    box.className = `toast ${kind === "error" ? "error" : "ok"}`;
    box.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(function () { box.hidden = true; }, kind === "error" ? 12000 : 6000);
  }

  // lineChart(container, {times: [epoch s], series: [{name, values: [number|null]}],
  //   label: "what it shows", unit: "/s", min: smallest top of the y axis})
  // Draws an SVG sized to the container (redrawn when the window is resized); null values
  // are gaps. The legend shows each series' latest value. svg[data-points] counts the points.
  const SVG = "http://www.w3.org/2000/svg";
  const charts = new Map();

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    return node;
  }

  function niceCeiling(value) {
    if (!(value > 0)) return 1;
    const power = Math.pow(10, Math.floor(Math.log10(value)));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  function latest(values) {
    for (let i = values.length - 1; i >= 0; i--) {
      if (values[i] !== null && values[i] !== undefined) return values[i];
    }
    return null;
  }

  function lineChart(container, options) {
    charts.set(container, options);
    const times = options.times || [];
    const series = (options.series || []).filter(function (s) { return s && s.values; });
    const unit = options.unit || "";
    const width = Math.max(Math.round(container.clientWidth || 480), 240);
    const height = options.height || 150;
    const left = 44, right = 8, top = 8, bottom = 20;
    const plotW = width - left - right, plotH = height - top - bottom;

    let max = options.min || 0, points = 0;
    for (const s of series) {
      for (const v of s.values) {
        if (v !== null && v !== undefined) { points++; if (v > max) max = v; }
      }
    }
    max = niceCeiling(max || 1);
    const t0 = times.length ? times[0] : 0, t1 = times.length ? times[times.length - 1] : 1;
    const x = function (t) { return left + (t1 > t0 ? (t - t0) / (t1 - t0) : 1) * plotW; };
    const y = function (v) { return top + plotH - (v / max) * plotH; };

    const chart = svg("svg", {
      width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "data-points": points,
      "aria-label": `${options.label || "chart"}: ` + (series.length ? series.map(function (s) {
        return `${s.name} ${format(latest(s.values))}${unit}`;
      }).join(", ") : "no data"),
    });
    for (const fraction of [0, 0.5, 1]) {
      const gy = y(max * fraction);
      chart.append(svg("line", { class: "grid-line", x1: left, x2: width - right, y1: gy, y2: gy }));
      const label = svg("text", { class: "axis-label", x: left - 6, y: gy + 3, "text-anchor": "end" });
      label.textContent = format(max * fraction);
      chart.append(label);
    }
    if (times.length) {
      [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]].forEach(function (pair) {
        const label = svg("text", { class: "axis-label", x: x(pair[0]), y: height - 4, "text-anchor": pair[1] });
        label.textContent = clock(pair[0]).slice(0, 5);
        chart.append(label);
      });
    }
    series.forEach(function (s, index) {
      let d = "", pen = false;
      s.values.forEach(function (v, i) {
        if (v === null || v === undefined || i >= times.length) { pen = false; return; }
        const px = x(times[i]).toFixed(1), py = y(v).toFixed(1);
        d += pen ? ` L${px} ${py}` : ` M${px} ${py} l0.01 0`;
        pen = true;
      });
      if (d) chart.append(svg("path", { class: `line series-${index % 8}`, d: d.trim(), "data-series": s.name }));
      // A point with no neighbour would be an invisible line: a dot shows it.
      s.values.forEach(function (v, i) {
        const alone = v !== null && v !== undefined && i < times.length &&
          (i === 0 || s.values[i - 1] === null || s.values[i - 1] === undefined) &&
          (i === s.values.length - 1 || s.values[i + 1] === null || s.values[i + 1] === undefined);
        if (alone) chart.append(svg("circle", { class: `dot series-${index % 8}`, cx: x(times[i]).toFixed(1), cy: y(v).toFixed(1), r: 2.5 }));
      });
    });
    if (!points) {
      const empty = svg("text", { class: "empty", x: left + plotW / 2, y: top + plotH / 2, "text-anchor": "middle" });
      empty.textContent = options.empty || "no data yet";
      chart.append(empty);
    }

    const legend = el("ul", { className: "legend" });
    series.forEach(function (s, index) {
      legend.append(el("li", { className: `series-${index % 8}` }, s.name,
        el("span", { className: "value", text: `${format(latest(s.values))}${unit}` })));
    });
    container.replaceChildren(chart, legend);
    return chart;
  }

  let resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      charts.forEach(function (options, container) {
        if (container.isConnected) lineChart(container, options); else charts.delete(container);
      });
    }, 200);
  });

  window.foodapp = { getJSON, postJSON, poll, lineChart, toast, el, format, clock, csrfToken };
})();
