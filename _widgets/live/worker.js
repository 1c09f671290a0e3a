// The book's Python, in a (module) Web Worker so the page stays responsive while it loads.
// Loads Pyodide from the site's own _static/pyodide-<version>/ (standard library
// only, no package), unpacks refimpl.zip from the site, and answers
// {id, explorer, state, changed} with the form HTML from refimpl.viz.web.recompute.
"use strict";

const BOOTSTRAP = `
import json, sys, time, types
sys.path.insert(0, "/home/pyodide/site-refimpl")

def _load_web():
    try:
        import refimpl.viz.web as web
    except ModuleNotFoundError as exc:
        if exc.name != "numpy":
            raise
        # A refimpl whose refimpl.fast.batch imports NumPy when refimpl is
        # imported: the page loads no NumPy, and the explorers never call
        # translate_batch, so stand in a module that says so if called.
        for name in [n for n in sys.modules if n == "refimpl" or n.startswith("refimpl.")]:
            del sys.modules[name]
        stub = types.ModuleType("refimpl.fast.batch")
        def translate_batch(*args, **kwargs):
            raise ImportError("translate_batch needs NumPy, which the book's in-browser Python does not load")
        stub.translate_batch = translate_batch
        sys.modules["refimpl.fast.batch"] = stub
        import refimpl.viz.web as web
    return web

_web = _load_web()

def _kvmbook_recompute(explorer, state_json, changed):
    t = time.perf_counter()
    try:
        html = _web.recompute(explorer, json.loads(state_json), changed or None)
    except (TypeError, ValueError) as exc:
        return json.dumps({"error": f"{type(exc).__name__}: {exc}"})
    return json.dumps({"html": html, "ms": (time.perf_counter() - t) * 1000})
`;

let recompute = null;
let queue = [];

async function init(msg) {
  const t0 = performance.now();
  const { loadPyodide } = await import(msg.pyodide + "pyodide.mjs");
  const py = await loadPyodide({ indexURL: msg.pyodide, packages: [] });
  const t1 = performance.now();
  const response = await fetch(msg.refimpl);
  if (!response.ok) throw new Error(`${msg.refimpl}: HTTP ${response.status}`);
  py.unpackArchive(await response.arrayBuffer(), "zip", { extractDir: "/home/pyodide/site-refimpl" });
  py.runPython(BOOTSTRAP);
  recompute = py.globals.get("_kvmbook_recompute");
  const t2 = performance.now();
  const version = py.runPython("import sys; sys.version.split()[0]");
  self.postMessage({ type: "ready", python: version, loadMs: t1 - t0, importMs: t2 - t1 });
  for (const m of queue) answer(m);
  queue = [];
}

function answer(msg) {
  let reply;
  try {
    reply = JSON.parse(recompute(msg.explorer, JSON.stringify(msg.state), msg.changed || ""));
  } catch (err) {
    reply = { error: String(err) };
  }
  self.postMessage({ type: "result", id: msg.id, ...reply });
}

self.onmessage = (event) => {
  const msg = event.data;
  if (msg.type === "init") {
    init(msg).catch((err) => self.postMessage({ type: "failed", error: String(err) }));
  } else if (msg.type === "recompute") {
    if (recompute === null) queue.push(msg);
    else answer(msg);
  }
};
