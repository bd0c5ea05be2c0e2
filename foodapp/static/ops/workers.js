// The Workers page: redraws the process and program tables from /ops/api/workers every few
// seconds (not while the tab is hidden), and sends Stop / Start / Restart to
// /ops/api/workers/<program>/<action> after asking (confirm) for the ones that stop work.
// Everything from the server goes in as text (foodapp.el), never as HTML.
"use strict";

(function () {
  const app = window.foodapp;
  if (!app) return;
  const { el, format } = app;
  const API = "/ops/api/workers";
  const STOPPED = ["STOPPED", "EXITED", "FATAL", "BACKOFF"];
  const busy = new Set();  // programs with an action under way: their buttons stay disabled

  function bytes(count) {
    if (count === null || count === undefined) return "";
    const units = ["B", "KiB", "MiB", "GiB"];
    let value = count, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
    return unit ? `${value.toFixed(1)} ${units[unit]}` : `${value} B`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.floor(seconds);
    const steps = [["d", 86400, "h", 3600], ["h", 3600, "min", 60], ["min", 60, "s", 1]];
    for (const [unit, size, smaller, smallSize] of steps) {
      if (s >= size) {
        const rest = Math.floor((s % size) / smallSize);
        return `${Math.floor(s / size)} ${unit}` + (rest ? ` ${rest} ${smaller}` : "");
      }
    }
    return `${s} s`;
  }

  function buttons(name, state) {
    const box = el("div", { className: "actions js-only" });
    const disabled = busy.has(name);
    if (STOPPED.includes(state)) {
      box.append(el("button", { type: "button", className: "primary", "data-action": "start", "data-program": name, disabled }, "Start"));
    } else {
      box.append(el("button", { type: "button", className: "danger", "data-action": "stop", "data-program": name, disabled }, "Stop"),
        " ",
        el("button", { type: "button", "data-action": "restart", "data-program": name, disabled }, "Restart"));
    }
    return box;
  }

  function cell(label, content, className) {
    return el("td", { "data-label": label, className }, content);
  }

  function processRow(p) {
    const inFlight = Object.entries(p.in_flight || {}).map(([queue, count]) => `${queue}: ${count}`).join(" ");
    const busyText = p.busy === null || p.busy === undefined ? "" : `${p.busy}${p.threads ? ` / ${p.threads}` : ""}`;
    return el("tr", { dataset: Object.assign({ id: p.id, state: p.state }, p.control ? { program: p.control } : {}) },
      cell("process", p.name, "mono"),
      cell("host", p.host || ""),
      cell("pid", el("span", {}, String(p.pid || ""), p.ppid ? el("span", { className: "muted" }, ` (main ${p.ppid})`) : null), "num"),
      cell("program", el("span", {}, p.control || p.program || "",
        p.supervisor_state ? el("span", { className: "muted" }, ` ${p.supervisor_state}`) : null), "mono"),
      cell("queues", p.queues || ""),
      cell("state", el("span", { className: `badge state-${p.state}` }, p.state)),
      cell("busy", busyText, "num"),
      cell("done", p.done === null || p.done === undefined ? "" : format(p.done), "num"),
      cell("RSS", bytes(p.rss_bytes), "num"),
      cell("CPU", p.cpu_percent === null || p.cpu_percent === undefined ? "" : `${p.cpu_percent.toFixed(1)} %`, "num"),
      cell("uptime", duration(p.uptime_seconds)),
      cell("last heartbeat", el("span", {}, `${p.last_heartbeat || ""} `, el("span", { className: "muted" }, `(${p.silent_seconds} s ago)`))),
      cell("in flight", inFlight),
      cell("actions", p.control ? buttons(p.control, p.supervisor_state) : ""));
  }

  function programRow(program) {
    return el("tr", { dataset: { program: program.name, state: program.state } },
      cell("program", program.name, "mono"),
      cell("state", program.state),
      cell("pid", String(program.pid || ""), "num"),
      cell("supervisord says", program.spawn_error || program.description || ""),
      cell("actions", buttons(program.name, program.state)));
  }

  function empty(columns, text) {
    return el("tr", {}, el("td", { colspan: columns }, text));
  }

  function draw(data) {
    const processes = data.processes || [];
    document.querySelector("#processes tbody").replaceChildren(...(processes.length ? processes.map(processRow)
      : [empty(14, "No worker process has a heartbeat: none runs, or none can reach Redis.")]));
    document.getElementById("process-count").textContent = String(processes.length);
    const idle = (data.programs || []).filter((program) => !program.beating);
    const sup = data.supervisor || {};
    document.querySelector("#programs tbody").replaceChildren(...(idle.length ? idle.map(programRow)
      : [empty(5, sup.reachable ? "Every program has a live worker." : "supervisord did not answer: see above.")]));
    const state = document.querySelector("#supervisor td[data-label='state']");
    state.replaceChildren(sup.reachable ? el("span", { className: "state-alive" }, "reachable")
      : el("span", { className: "error-text" }, sup.error || "supervisord did not answer"));
  }

  const live = app.poll(async function () { draw(await app.getJSON(API)); }, 3000, { immediate: true });

  const QUESTIONS = {
    stop: (name) => `Stop ${name}? Its worker finishes or hands back its jobs, then takes no more until started.`,
    restart: (name) => `Restart ${name}? Its worker finishes or hands back its jobs, then a new one starts.`,
  };

  document.getElementById("main").addEventListener("click", async function (event) {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const action = button.getAttribute("data-action"), name = button.getAttribute("data-program");
    if (QUESTIONS[action] && !window.confirm(QUESTIONS[action](name))) return;
    busy.add(name);
    document.querySelectorAll(`button[data-program="${CSS.escape(name)}"]`).forEach((b) => { b.disabled = true; });
    app.toast(`${action} ${name}: asked supervisord…`, "ok");
    try {
      const answer = await app.postJSON(`${API}/${encodeURIComponent(name)}/${action}`);
      app.toast(answer.message, "ok");
    } catch (error) {
      app.toast(`${action} ${name} failed: ${error.message}`, "error");
    } finally {
      busy.delete(name);
      live.now();
    }
  });
})();
