// The reviewer console's only script: local times, a live inbox, JSON checks.
// Pages work without it; it adds what needs the browser.
"use strict";

function localTimes(root) {
  for (const el of root.querySelectorAll("time[datetime]")) {
    const when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when)) el.textContent = when.toLocaleString();
  }
}

function liveInbox() {
  const live = document.getElementById("inbox-live");
  if (!live || !window.EventSource) return;
  const query = live.dataset.query;
  let timer = null;
  let running = false;
  let again = false;

  async function refresh() {
    if (running) { again = true; return; }
    running = true;
    try {
      const response = await fetch(live.dataset.rowsUrl + (query ? "?" + query : ""),
        { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.redirected || response.status === 401) { window.location.reload(); return; }
      if (response.ok) {
        const html = await response.text();
        // Read the ticks only now: a box ticked while the rows were loading stays ticked.
        const checked = new Set(
          [...live.querySelectorAll("input[name=call_id]:checked")].map((box) => box.value));
        live.innerHTML = html;  // rendered (and escaped) by the server
        for (const box of live.querySelectorAll("input[name=call_id]")) {
          box.checked = checked.has(box.value);
        }
        const count = document.getElementById("pending-count");
        const pending = count ? Number(count.dataset.pending) : 0;
        document.title = (pending ? "(" + pending + ") " : "") + "Inbox · agent-runtime";
        localTimes(live);
      }
    } finally {
      running = false;
      if (again) { again = false; refresh(); }
    }
  }

  // EventSource reconnects by itself, sending Last-Event-ID: no event is missed.
  const source = new EventSource("/console/events");
  const changed = () => { clearTimeout(timer); timer = setTimeout(refresh, 50); };
  for (const type of ["approval.created", "approval.decided", "approval.cancelled",
    "approval.expired", "approval.claimed", "approval.executed", "approval.failed",
    "approval.deleted"]) {
    source.addEventListener(type, changed);
  }
  source.addEventListener("open", changed);  // catch up after a reconnect
}

function jsonEditor() {
  const area = document.getElementById("arguments-input");
  const approve = document.getElementById("approve");
  const error = document.getElementById("arguments-error");
  if (!area || !approve || !error) return;
  const check = () => {
    let problem = "";
    try {
      const value = JSON.parse(area.value);
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        problem = "The arguments must be a JSON object.";
      }
    } catch (e) {
      problem = "Not valid JSON: " + e.message;
    }
    error.textContent = problem;
    error.hidden = !problem;
    approve.disabled = Boolean(problem);
  };
  area.addEventListener("input", check);
}

document.addEventListener("DOMContentLoaded", () => {
  localTimes(document);
  liveInbox();
  jsonEditor();
});
