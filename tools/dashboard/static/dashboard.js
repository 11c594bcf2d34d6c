// The dashboard's one script: keeps a page current from its event stream, and sends cancels.
// Every value is written with textContent or setAttribute, never as markup: outputs are text.
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const STATES = ["queued", "running", "completed", "failed", "cancelled", "interrupted"];
  const csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  function cell(row, selector, text) {
    const found = row.querySelector(selector);
    if (found && found.textContent !== String(text)) found.textContent = String(text);
  }

  function taskRows(task) {
    const body = document.querySelector("#tasks tbody");
    let row = body.querySelector('tr[data-task="' + CSS.escape(task.id) + '"]');
    if (!row) {
      row = document.createElement("tr");
      row.dataset.task = task.id;
      const label = document.createElement("td");
      label.className = "label";
      row.appendChild(label);
      for (const name of ["state", "backend", "model", "elapsed", "attempts", "note", "tokens", "cost"]) {
        const td = document.createElement("td");
        td.className = name;
        row.appendChild(td);
      }
      const action = document.createElement("td");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "cancel";
      button.dataset.cancel = "/tasks/" + encodeURIComponent(task.id) + "/cancel";
      button.textContent = "Cancel";
      action.appendChild(button);
      row.appendChild(action);
      const out = document.createElement("tr");
      out.dataset.output = task.id;
      const td = document.createElement("td");
      td.colSpan = 10;
      const pre = document.createElement("pre");
      pre.className = "output";
      td.appendChild(pre);
      out.appendChild(td);
      body.appendChild(row);
      body.appendChild(out);
    }
    return [row, body.querySelector('tr[data-output="' + CSS.escape(task.id) + '"]')];
  }

  function showTask(task) {
    const [row, out] = taskRows(task);
    row.className = "state-" + task.state;
    const label = row.querySelector(".label");
    if (!label.firstChild) {
      label.appendChild(document.createTextNode(task.label));
      label.appendChild(document.createElement("br"));
      const small = document.createElement("small");
      small.textContent = task.id;
      label.appendChild(small);
    }
    cell(row, ".state", task.state);
    cell(row, ".backend", task.backend);
    cell(row, ".model", task.model);
    cell(row, ".elapsed", task.elapsed);
    cell(row, ".attempts", task.attempts);
    cell(row, ".note", (task.note + " " + task.error).trim());
    cell(row, ".tokens", task.tokens);
    cell(row, ".cost", task.cost);
    row.querySelector("button.cancel").disabled = !task.unfinished;
    cell(out, "pre.output", task.output);
  }

  function rect(parent, cls, x, y, width, height) {
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("class", cls);
    r.setAttribute("x", x);
    r.setAttribute("y", y);
    r.setAttribute("width", width);
    r.setAttribute("height", height);
    parent.appendChild(r);
  }

  function showTimeline(timeline) {
    const svg = document.getElementById("timeline");
    if (!svg) return;
    svg.setAttribute("viewBox", "0 0 " + timeline.width + " " + timeline.height);
    const bars = document.createDocumentFragment();
    for (const bar of timeline.bars) {
      const g = document.createElementNS(SVG, "g");
      g.setAttribute("class", "bar state-" + bar.state);
      g.setAttribute("data-task", bar.id);
      const title = document.createElementNS(SVG, "title");
      title.textContent = bar.title;
      g.appendChild(title);
      rect(g, "queued", bar.queued[0], bar.y + 3, bar.queued[1], 12);
      if (bar.running) rect(g, "running", bar.running[0], bar.y + 3, bar.running[1], 12);
      for (const x of bar.retries) rect(g, "retry", x, bar.y + 1, 3, 16);
      bars.appendChild(g);
    }
    svg.replaceChildren(bars);
    const span = document.getElementById("span");
    if (span) span.textContent = timeline.span;
  }

  function showGroup(group) {
    for (const state of STATES) {
      const count = document.getElementById("count-" + state);
      if (count) count.textContent = String(group.counts[state]);
    }
    document.getElementById("group-size").textContent = String(group.size);
    document.getElementById("group-tokens").textContent = group.tokens;
    document.getElementById("group-cost").textContent = group.cost;
    document.getElementById("group-budget").textContent = group.budget;
    document.getElementById("cancel-group").disabled = group.unfinished === 0;
    for (const task of group.tasks) showTask(task);
    showTimeline(group.timeline);
  }

  function showGroups(groups) {
    const body = document.querySelector("#groups tbody");
    const rows = [];
    for (const g of groups) {
      const row = document.createElement("tr");
      row.dataset.group = g.id;
      const first = document.createElement("td");
      const link = document.createElement("a");
      link.href = "/groups/" + encodeURIComponent(g.id);
      link.textContent = g.id;
      first.appendChild(link);
      row.appendChild(first);
      const values = [g.size, ...STATES.map((s) => g.counts[s]), g.cost, g.budget];
      for (const value of values) {
        const td = document.createElement("td");
        td.textContent = String(value);
        row.appendChild(td);
      }
      rows.push(row);
    }
    body.replaceChildren(...rows);
  }

  function connect() {
    const live = document.getElementById("live");
    const source = new EventSource(document.body.dataset.events);
    source.onopen = () => { live.textContent = "live"; live.className = "live on"; };
    source.onerror = () => { live.textContent = "reconnecting…"; live.className = "live off"; };
    source.addEventListener("view", (event) => {
      const view = JSON.parse(event.data);
      if (view.group) showGroup(view.group);
      if (view.groups) showGroups(view.groups);
    });
    source.addEventListener("gone", () => {
      source.close();
      live.textContent = "gone: this group is no longer kept";
      live.className = "live off";
    });
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-cancel]");
    if (!button || button.disabled) return;
    button.disabled = true;
    const answer = await fetch(button.dataset.cancel, {
      method: "POST",
      headers: { "X-CSRF-Token": csrf },
      credentials: "same-origin",
    });
    if (!answer.ok) button.disabled = false;
  });

  connect();
})();
