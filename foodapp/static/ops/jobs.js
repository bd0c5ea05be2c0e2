// The jobs' pages (/ops/jobs and /ops/jobs/<id>), on top of console.js (window.foodapp).
//
// Both pages work without this script: the search is a GET form, the actions are forms
// that post with the page's CSRF token and come back. This adds:
//   /ops/jobs       "select all", a confirm() before a bulk cancel, and the bulk actions
//                   sent as JSON (POST /ops/api/jobs/bulk) with the outcome in the toast;
//   /ops/jobs/<id>  a confirm() before a cancel, the actions sent as JSON, and live
//                   updates of the state, timeline, logs and result (GET /ops/api/jobs/<id>
//                   every 3 s while the job is not finished and the tab is visible), with
//                   only the buttons that apply to its state shown.
// Data goes into the page as text, never as HTML.
"use strict";

(function () {
  const app = window.foodapp;
  if (!app) return;

  function ask(text) {
    return !text || window.confirm(text);
  }

  // --- the search page ------------------------------------------------------------------
  const bulk = document.getElementById("bulk");
  if (bulk) {
    const all = document.getElementById("select-all");
    const boxes = function () { return Array.from(bulk.querySelectorAll("input[name=ids]")); };
    if (all) {
      all.addEventListener("change", function () {
        boxes().forEach(function (box) { box.checked = all.checked; });
      });
    }
    bulk.addEventListener("submit", async function (event) {
      event.preventDefault();
      const button = event.submitter;
      if (!button) return;
      const action = button.value;
      const scope = document.getElementById("bulk-scope").value;
      const ids = boxes().filter(function (box) { return box.checked; }).map(function (box) { return box.value; });
      if (scope === "selected" && !ids.length) {
        app.toast("Tick the jobs to " + action + " first (or apply it to every job this search matches).", "error");
        return;
      }
      const what = scope === "selected" ? ids.length + " job(s)" : "every job this search matches";
      if (!ask(button.getAttribute("data-confirm") ? button.getAttribute("data-confirm") + " (" + what + ")" : null)) return;
      const body = { action: action };
      if (scope === "selected") {
        body.ids = ids;
      } else {
        body.query = {};
        bulk.querySelectorAll("input[type=hidden][name^=q_]").forEach(function (input) {
          body.query[input.name.slice(2)] = input.value;
        });
      }
      button.disabled = true;
      try {
        const answer = await app.postJSON("/ops/api/jobs/bulk", body);
        app.toast(answer.message, answer.done === answer.count ? "ok" : "error");
        // The results show the new states: reload the same search after a moment to read.
        setTimeout(function () { window.location.reload(); }, 1500);
      } catch (error) {
        app.toast(error.message, "error");
      } finally {
        button.disabled = false;
      }
    });
  }

  // --- a job's page ---------------------------------------------------------------------
  const page = document.getElementById("job-page");
  if (!page) return;
  const jobId = page.getAttribute("data-job-id");
  const final = (page.getAttribute("data-final") || "").split(" ");
  let poller = null;

  function details(event) {
    return Object.keys(event).sort().filter(function (key) { return key !== "at" && key !== "event"; })
      .map(function (key) { return key + ": " + event[key] + " "; }).join("");
  }

  function setText(id, text) {
    const node = document.getElementById(id);
    if (node) node.textContent = text || "";
  }

  function show(job) {
    const row = document.getElementById("state-row");
    row.className = "state-" + job.state;
    row.querySelector("td.state").textContent = job.state;
    setText("started", job.started_at);
    setText("finished", job.finished_at);
    setText("worker", job.worker_name);
    setText("eta", job.eta);
    setText("error", job.error);
    document.getElementById("error-row").hidden = !job.error;

    const timeline = document.querySelector("#timeline tbody");
    timeline.replaceChildren.apply(timeline, (job.events || []).map(function (event) {
      return app.el("tr", {}, app.el("td", { text: event.at || "" }), app.el("td", { text: event.event || "" }),
        app.el("td", { text: details(event) }));
    }));

    const logs = job.logs || [];
    const table = document.getElementById("logs");
    table.hidden = !logs.length;
    document.getElementById("logs-empty").hidden = !!logs.length;
    const body = table.querySelector("tbody");
    body.replaceChildren.apply(body, logs.map(function (line) {
      return app.el("tr", { className: "log-" + String(line.level || "").toLowerCase() },
        app.el("td", { className: "nowrap", text: line.at }), app.el("td", { text: line.level }),
        app.el("td", { className: "mono", text: line.logger }), app.el("td", {}, app.el("pre", { text: line.message })));
    }));

    setText("result", JSON.stringify(job.result === undefined ? null : job.result, null, 2));

    document.querySelectorAll("form.job-action").forEach(function (form) {
      const states = (form.getAttribute("data-states") || "").split(" ");
      form.hidden = states.indexOf(job.state) === -1;
    });

    if (final.indexOf(job.state) !== -1 && poller) {
      poller.stop();
      poller = null;
      setText("live", "Finished: this page no longer changes.");
    }
  }

  async function refresh() {
    show(await app.getJSON("/ops/api/jobs/" + encodeURIComponent(jobId)));
  }

  document.querySelectorAll("form.job-action").forEach(function (form) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      if (!ask(form.getAttribute("data-confirm"))) return;
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const answer = await app.postJSON(form.getAttribute("action"), {});
        app.toast(answer.message, "ok");
      } catch (error) {
        app.toast(error.message, "error");
      } finally {
        button.disabled = false;
      }
      try {
        await refresh();
      } catch (error) {
        app.toast(error.message, "error");
      }
      if (!poller && final.indexOf(document.querySelector("#state-row td.state").textContent) === -1) {
        poller = app.poll(refresh, 3000);
      }
    });
  });

  const state = document.querySelector("#state-row td.state").textContent;
  if (final.indexOf(state) === -1) {
    poller = app.poll(refresh, 3000);
  }
})();
