// /ops/periodic: refreshes the schedules and schedulers from /ops/api/periodic every few
// seconds (not while the tab is hidden: foodapp.poll), and runs a schedule's job now.
// Times are shown in the browser's time zone, with the UTC instant in the title.
"use strict";

(function () {
  const fa = window.foodapp;
  if (!fa) return;
  const el = fa.el;

  function when(epoch) {
    if (epoch === null || epoch === undefined || epoch === "") return "–";
    const moment = new Date(Number(epoch) * 1000);
    const seconds = Math.round(Number(epoch) - Date.now() / 1000);
    const relative = seconds > 0 ? `in ${span(seconds)}` : seconds === 0 ? "now" : `${span(-seconds)} ago`;
    return el("time", { datetime: moment.toISOString(), title: moment.toISOString(), dataset: { epoch: String(epoch) } },
      `${moment.toLocaleString()} (${relative})`);
  }

  function span(seconds) {
    if (seconds < 90) return `${seconds} s`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
    if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
    return `${Math.round(seconds / 86400)} days`;
  }

  function scheduleRow(row) {
    const last = row.last_run;
    const args = row.args && row.args.length ? el("span", { className: "muted mono" }, " " + JSON.stringify(row.args)) : null;
    const button = el("button", { type: "button", className: "run-now", dataset: { name: row.name } }, "Run now");
    return el("tr", { dataset: { schedule: row.name } },
      el("td", { className: "mono name" }, row.name),
      el("td", { className: "mono cron nowrap" }, row.cron),
      el("td", { className: "actor" }, row.actor, args),
      el("td", { className: "next-run" }, when(row.next_run)),
      el("td", { className: "last-run" }, last ? when(last.tick_epoch) : "never",
        last && last.manual ? " " : null, last && last.manual ? el("span", { className: "badge" }, "run now") : null),
      el("td", { className: "job mono" }, last ? el("a", { href: last.page_url }, last.job_id) : null),
      el("td", { className: "state" }, last ? el("span", { className: `badge state-${last.state}` }, last.state) : null),
      el("td", { className: "fired-by" }, last ? last.fired_by : null),
      el("td", { className: "actions js-only" }, button));
  }

  function schedulerRow(s) {
    return el("tr", { dataset: { scheduler: s.name } },
      el("td", { className: "mono" }, s.name),
      el("td", null, el("span", { className: `badge ${s.alive ? "state-alive" : "state-stopped"}` }, s.alive ? "alive" : "silent")),
      el("td", null, `${fa.format(s.seen_seconds_ago)} s ago`),
      el("td", { className: "num" }, fa.format(s.fired)),
      el("td", { className: "num" }, fa.format(s.replayed)),
      el("td", { className: "num" }, fa.format(s.failed)));
  }

  function empty(columns, text) {
    return el("tr", { className: "empty" }, el("td", { colspan: columns }, text));
  }

  function render(data) {
    const schedules = document.querySelector("#periodic tbody");
    const schedulers = document.querySelector("#schedulers tbody");
    // Keep the keyboard focus on the same button across a refresh.
    const focused = document.activeElement && document.activeElement.classList.contains("run-now")
      ? document.activeElement.dataset.name : null;
    schedules.replaceChildren(...(data.schedules.length ? data.schedules.map(scheduleRow)
      : [empty(9, "No periodic jobs: add lines to periodic.jobs in the ini and restart the scheduler and the web app.")]));
    schedulers.replaceChildren(...(data.schedulers.length ? data.schedulers.map(schedulerRow)
      : [empty(6, "No scheduler has a heartbeat: start foodapp-scheduler (supervisorctl start scheduler).")]));
    if (focused) {
      const again = schedules.querySelector(`button.run-now[data-name="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
    const warning = document.getElementById("periodic-warning");
    document.getElementById("periodic-warning-text").textContent = data.warning || "";
    warning.hidden = !data.warning;
  }

  async function refresh() {
    render(await fa.getJSON("/ops/api/periodic"));
  }

  // The server rendered times in UTC; show them as the refreshes will, at once.
  document.querySelectorAll("#periodic time[data-epoch]").forEach(function (node) {
    node.replaceWith(when(node.dataset.epoch));
  });

  const poller = fa.poll(refresh, 3000);

  document.getElementById("periodic").addEventListener("click", async function (event) {
    const button = event.target.closest("button.run-now");
    if (!button) return;
    const name = button.dataset.name;
    button.disabled = true;
    try {
      // One key per press: a retried request makes no second job.
      const key = (window.crypto && crypto.randomUUID) ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`;
      const answer = await fetchRun(name, key);
      fa.toast(`Queued ${name} now: job ${answer.job_id}`, "ok");
      await poller.now();
    } catch (error) {
      fa.toast(`Could not run ${name}: ${error.message}`, "error");
    } finally {
      button.disabled = false;
    }
  });

  async function fetchRun(name, key) {
    const response = await fetch(`/ops/api/periodic/${encodeURIComponent(name)}/run`, {
      method: "POST", credentials: "same-origin", cache: "no-store",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": fa.csrfToken(),
                 "Idempotency-Key": key },
      body: "{}",
    });
    const body = await response.json().catch(function () { return null; });
    if (!response.ok) throw new Error(body && body.message ? body.message : `the server answered ${response.status}`);
    return body;
  }
})();
