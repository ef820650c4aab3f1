// neural-collage: class names as dropdowns (ComfyUI editor extension, plain JS, no build).
//
// The class inputs of the pack's nodes (Class Select, Class Map, Paint Class, Paint Class Sweep, Project Image, the
// painter's mask class) are text inputs in the node declarations, so a saved workflow and a headless run may name
// any class by name or id. In the editor they become dropdowns of the connected model's labels: the extension
// walks up the node's inputs to its Load Generator, asks the server for that model's labels
// (GET /neural-collage/labels?model=..., the route the painter uses) and replaces the text widget by a combo
// widget in the same place, so the workflow's widget values keep their order. A value the list does not hold
// (a class id, a name of another model) stays selectable; without a model or labels the text widget stays.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { modelOf } from "./model.js";

const LABELS_ROUTE = "/neural-collage/labels";
const CLASS_INPUTS = {
  ClassSelect: ["class_name"],
  ClassMap: ["base_class"],
  PaintClass: ["class_name"],
  PaintClassSweep: ["class_name"],
  ProjectImage: ["class_name"],
  PaintClassMap: ["mask_class"],
};
const EXTRA_CHOICES = { ProjectImage: ["auto"] }; // Project Image may rank the classes itself
const cache = new Map(); // model -> Promise of its labels (or null)

function labelsOf(model) {
  if (!cache.has(model)) {
    cache.set(model, api.fetchApi(`${LABELS_ROUTE}?model=${encodeURIComponent(model)}`)
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => (Array.isArray(data?.labels) && data.labels.length ? data.labels : null))
      .catch(() => null));
  }
  return cache.get(model);
}

async function offerClasses(node) {
  const names = CLASS_INPUTS[node.type];
  const model = names && modelOf(node);
  if (!model) return;
  const labels = await labelsOf(model);
  if (!labels) return;
  for (const name of names) {
    const i = node.widgets?.findIndex((w) => w.name === name) ?? -1;
    if (i < 0) continue;
    const old = node.widgets[i];
    const value = String(old.value ?? "");
    const values = [...(EXTRA_CHOICES[node.type] || []), ...labels];
    if (value && !values.includes(value)) values.unshift(value); // keep what the workflow says
    if (old.type === "combo") {
      old.options.values = values;
      continue;
    }
    const combo = node.addWidget("combo", name, value || values[0], old.callback, { values });
    node.widgets.splice(node.widgets.indexOf(combo), 1); // addWidget appended it: put it where the text was
    node.widgets.splice(i, 1, combo);
    old.onRemove?.();
  }
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "neural-collage.classes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!CLASS_INPUTS[nodeData?.name]) return;
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const r = configured?.apply(this, arguments);
      setTimeout(() => offerClasses(this), 0);
      return r;
    };
    const connections = nodeType.prototype.onConnectionsChange;
    nodeType.prototype.onConnectionsChange = function () {
      const r = connections?.apply(this, arguments);
      setTimeout(() => offerClasses(this), 0);
      return r;
    };
  },
});
