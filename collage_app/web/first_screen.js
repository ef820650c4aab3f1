// neural-collage serve: the editor's default graph is the pack's main workflow (plain JS, no build).
//
// Served by `neural-collage serve` only (never by ComfyUI, whose default graph stays its own). The editor opens
// its default graph when it has nothing to restore (a fresh browser, or a browser without a workflow open) and
// for "Load Default"; out of the box that is ComfyUI's Stable Diffusion graph, whose nodes this server does not
// have. Before the editor restores or loads anything, this extension asks the server for the graph to open
// instead (GET /neural-collage/default-workflow: workflows/class_collage.json, editor format) and puts it in place
// of the stock graph (window.comfyAPI.defaultGraph.defaultGraph, the object the editor loads). A workflow the user
// has open is restored by the editor as before: only the default changes. When the server has no default workflow,
// the default is the blank graph, never the stock one.

import { api } from "../../scripts/api.js";
import { app } from "../../scripts/app.js";

const DEFAULT_WORKFLOW_ROUTE = "/neural-collage/default-workflow";

async function defaultWorkflow() {
  try {
    const r = await api.fetchApi(DEFAULT_WORKFLOW_ROUTE, { cache: "no-store" });
    if (!r.ok) {
      console.warn(`[neural-collage] ${DEFAULT_WORKFLOW_ROUTE}: ${r.status}; the default graph is blank`);
      return null;
    }
    const graph = await r.json();
    return Array.isArray(graph?.nodes) ? graph : null;
  } catch (e) {
    console.warn(`[neural-collage] ${DEFAULT_WORKFLOW_ROUTE} failed; the default graph is blank`, e);
    return null;
  }
}

app.registerExtension({
  name: "neural-collage.first-screen",
  // `setup` runs (and is awaited) before the editor restores the last workflow or loads its default graph
  async setup() {
    const defaults = window.comfyAPI?.defaultGraph;
    const stock = defaults?.defaultGraph;
    if (!stock || typeof stock !== "object") {
      console.warn("[neural-collage] this editor version has no comfyAPI.defaultGraph; its default graph is kept");
      return;
    }
    const graph = (await defaultWorkflow()) ?? defaults.blankGraph;
    // the editor holds this very object: replace its contents, not the reference
    for (const key of Object.keys(stock)) delete stock[key];
    Object.assign(stock, structuredClone(graph));
  },
});
