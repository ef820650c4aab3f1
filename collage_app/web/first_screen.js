// neural-collage serve: the editor's default graph is the pack's main workflow (plain JS, no build).
//
// Served by `neural-collage serve` only (never by ComfyUI, whose default graph stays its own). The editor opens
// its default graph when it has nothing to restore (a fresh browser, or a browser without a workflow open) and
// for "Load Default"; out of the box that is ComfyUI's Stable Diffusion graph, whose nodes this server does not
// have. Before the editor restores or loads anything, this extension asks the server for the graph to open
// instead (GET /neural-collage/default-workflow: workflows/class_collage.json, editor format) and puts it in place
// of the stock graph (window.comfyAPI.defaultGraph.defaultGraph, the object the editor loads). A workflow the user
// has open is restored by the editor as before: only the default changes. When the server has no default workflow,
// the default is the blank graph, never the stock one. The main workflow opens fitted to the window.

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

// The whole graph in view: the saved viewport (extra.ds) fitted to this window, leaving room for the editor's side
// bar (left) and toolbars (top, bottom). Node titles are drawn above a node's position.
const MARGIN = { left: 72, top: 110, right: 24, bottom: 80 };
const TITLE = 30;

function fitToWindow(graph) {
  const nodes = Array.isArray(graph.nodes) ? graph.nodes.filter((n) => n?.pos && n?.size) : [];
  if (!nodes.length) return graph;
  const x0 = Math.min(...nodes.map((n) => n.pos[0]));
  const y0 = Math.min(...nodes.map((n) => n.pos[1] - TITLE));
  const x1 = Math.max(...nodes.map((n) => n.pos[0] + n.size[0]));
  const y1 = Math.max(...nodes.map((n) => n.pos[1] + n.size[1]));
  const width = window.innerWidth - MARGIN.left - MARGIN.right;
  const height = window.innerHeight - MARGIN.top - MARGIN.bottom;
  const scale = Math.max(0.25, Math.min(1, width / (x1 - x0), height / (y1 - y0)));
  const offset = [MARGIN.left / scale - x0, MARGIN.top / scale - y0];
  return { ...graph, extra: { ...graph.extra, ds: { scale, offset } } };
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
    const workflow = await defaultWorkflow();
    const graph = workflow ? fitToWindow(workflow) : defaults.blankGraph;
    // the editor holds this very object: replace its contents, not the reference
    for (const key of Object.keys(stock)) delete stock[key];
    Object.assign(stock, structuredClone(graph));
  },
});
