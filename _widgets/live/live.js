// Makes the explorers written by refimpl.viz.web live: their Python runs in a
// Web Worker (worker.js) from files of this site only. Until it is ready the
// page shows the outcome saved at build time; after, each change of a control
// sends the form's values to refimpl.viz.web.recompute and shows the form it
// returns. window.kvmbookLive records what happened and when (for the tests).
"use strict";
(() => {
  const config = window.KVMBOOK_LIVE || {};
  const boxes = Array.from(document.querySelectorAll(".kvmbook-live"));
  const live = (window.kvmbookLive = {
    state: "static", python: null, readyAt: null, firstOutcomeAt: null,
    loadMs: null, importMs: null, recomputes: [], errors: [],
  });
  if (!boxes.length) return;

  function say(box, kind, text) {
    const p = box.querySelector(".kvmbook-live-status");
    p.className = `kvmbook-live-status kl-${kind}`;
    p.textContent = text;
  }

  if (!config.runtime) {
    for (const box of boxes) {
      say(box, "static", "This explorer is static in this build of the book (it was built " +
        "without npm, so no Python runtime was bundled): it shows the outcome saved at build " +
        "time. Open the chapter in Jupyter to change it.");
    }
    return;
  }

  live.state = "loading";
  for (const box of boxes) {
    say(box, "loading", "Loading Python in your browser\u2026 the outcome shown is the one " +
      "saved when the book was built.");
  }
  const url = (rel) => new URL(rel, document.baseURI).href;
  const worker = new Worker(url(config.worker), { type: "module" });
  const waiting = new Map();
  let nextId = 1;

  function ask(explorer, state, changed) {
    const id = nextId++;
    return new Promise((resolve) => {
      waiting.set(id, resolve);
      worker.postMessage({ type: "recompute", id, explorer, state, changed });
    });
  }

  function readForm(form) {
    const state = {};
    for (const el of form.elements) {
      if (!el.name) continue;
      if (el.type === "checkbox") state[el.name] = el.checked;
      else if (el.type === "radio") { if (el.checked) state[el.name] = el.value; }
      else state[el.name] = el.value;
    }
    return state;
  }

  function fail(box, text) {
    live.errors.push(text);
    say(box, "error", `Python could not recompute this explorer: ${text}`);
  }

  // One recompute in flight per explorer; changes made meanwhile are merged
  // into one more recompute with the form as it then stands.
  function attach(box) {
    const form = box.querySelector("form");
    const fieldset = form.querySelector("fieldset");
    const explorer = box.dataset.explorer;
    let busy = false;
    let again = null;

    async function run(changed) {
      if (busy) { again = again === null ? changed : (again === changed ? changed : ""); return; }
      busy = true;
      box.dataset.busy = "1";
      const t0 = performance.now();
      const reply = await ask(explorer, readForm(form), changed);
      const ms = performance.now() - t0;
      if (reply.error) {
        fail(box, reply.error);
      } else {
        const focus = document.activeElement && form.contains(document.activeElement)
          ? [document.activeElement.name, document.activeElement.value] : null;
        fieldset.innerHTML = reply.html;
        if (focus) {
          const el = Array.from(form.elements).find(
            (e) => e.name === focus[0] && (e.type !== "radio" || e.value === focus[1]));
          if (el) el.focus();
        }
        live.recomputes.push({ explorer, changed, roundTripMs: ms, pythonMs: reply.ms });
        if (live.firstOutcomeAt === null) live.firstOutcomeAt = performance.now();
        box.dataset.recomputes = String(Number(box.dataset.recomputes || 0) + 1);
        say(box, "live", `Live: Python ${live.python} in your browser recomputed this in ` +
          `${reply.ms.toFixed(1)} ms.`);
      }
      busy = false;
      if (again !== null) { const c = again; again = null; run(c); }
      else box.dataset.busy = "0";
    }

    form.addEventListener("submit", (e) => e.preventDefault());
    form.addEventListener("input", (e) => {
      if (e.target.type === "range" && e.target.nextElementSibling) {
        e.target.nextElementSibling.textContent = e.target.value;
      }
    });
    form.addEventListener("change", (e) => run(e.target.name || ""));
    return { box, fieldset, run };
  }

  const explorers = boxes.map(attach);
  worker.onmessage = (event) => {
    const msg = event.data;
    if (msg.type === "ready") {
      Object.assign(live, { state: "ready", python: msg.python, readyAt: performance.now(),
                            loadMs: msg.loadMs, importMs: msg.importMs });
      for (const ex of explorers) {
        ex.fieldset.disabled = false;
        ex.run("");   // the first recomputed outcome: the saved state, now from live Python
      }
    } else if (msg.type === "result") {
      const resolve = waiting.get(msg.id);
      waiting.delete(msg.id);
      if (resolve) resolve(msg);
    } else if (msg.type === "failed") {
      live.state = "failed";
      for (const box of boxes) fail(box, msg.error);
    }
  };
  worker.onerror = (event) => {
    live.state = "failed";
    for (const box of boxes) fail(box, event.message || "the worker failed to start");
  };
  worker.postMessage({ type: "init", pyodide: url(config.pyodide), refimpl: url(config.refimpl) });
})();
