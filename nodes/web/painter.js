// neural-collage: the class-map painter of the Paint Class Map node (ComfyUI editor extension, plain JS, no build).
//
// The node gets a canvas over its background picture (sent by the node in its ui as `paint_background`). Pick a
// class (each has its colour; the names come from the model the map was made for), a brush size, a soft edge, a
// strength or the eraser, and paint: every stroke is appended to the node's `strokes` input as JSON (so the saved
// workflow holds it and re-runs headless to the same picture) and the graph is queued again. Queueing is debounced:
// the first stroke is sent at once, strokes made while a run is going are sent together when it ends, and runs are
// at least QUEUE_GAP_MS apart. Served by ComfyUI from the pack's WEB_DIRECTORY and by `neural-collage serve`.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { modelOf } from "./model.js";

const NODE = "PaintClassMap";
const LABELS_ROUTE = "/neural-collage/labels";
const QUEUE_GAP_MS = 300;
const CANVAS_PX = 512; // the canvas's own resolution (strokes are stored in fractions, whatever the picture's size)
const MIN_HEIGHT = 300;
const OVERLAY_ALPHA = 0.45; // how strongly painted classes tint the picture on the canvas
const round4 = (v) => Math.round(Math.min(1, Math.max(0, v)) * 10000) / 10000;

function el(tag, props = {}, style = {}) {
  const e = document.createElement(tag);
  Object.assign(e, props);
  Object.assign(e.style, style);
  return e;
}

function slider(label, min, max, value, title) {
  const wrap = el("label", { title }, { display: "flex", alignItems: "center", gap: "4px", fontSize: "11px" });
  const input = el("input", { type: "range", min, max, value, step: 1 }, { width: "70px" });
  wrap.append(document.createTextNode(label), input);
  return { wrap, input };
}

class Painter {
  constructor(node) {
    this.node = node;
    this.labels = [];
    this.colors = [];
    this.background = null;
    this.current = null; // the stroke being drawn
    this.hover = null;
    this.busy = false;
    this.dirty = false;
    this.lastQueued = -Infinity;
    this.lastStrokeAt = null;
    this.timer = null;
    this.strokesWidget = node.widgets?.find((w) => w.name === "strokes");
    this.hideStrokesText();
    this.build();
    this.widget = node.addDOMWidget("painter", "neural_collage_painter", this.root, {
      serialize: false,
      hideOnZoom: false,
      getValue: () => undefined,
      setValue: () => {},
      getMinHeight: () => MIN_HEIGHT,
    });
    this.widget.serialize = false;
    const [w, h] = node.size;
    node.setSize([Math.max(w, 320), Math.max(h, 520)]);
    setTimeout(() => this.hideStrokesText(), 0);
    this.onEvent = (e) => this.onApiEvent(e);
    for (const name of ["execution_success", "execution_error", "execution_interrupted"]) {
      api.addEventListener(name, this.onEvent);
    }
    setTimeout(() => this.refreshLabels(), 0);
    this.redraw();
  }

  // ------------------------------------------------------------------------------------------------- the widget
  hideStrokesText() {
    // the painter edits the strokes; their JSON stays in the workflow (and in the prompt) but not on the node
    const w = this.strokesWidget;
    if (!w) return;
    w.hidden = true;
    w.options = w.options || {};
    w.options.hidden = true;
    if (w.element?.style) w.element.style.display = "none";
  }

  build() {
    this.root = el("div", { className: "neural-collage-painter" },
      { display: "flex", flexDirection: "column", gap: "4px", width: "100%", height: "100%", boxSizing: "border-box",
        color: "var(--input-text, #ddd)", fontFamily: "sans-serif" });
    const bar = el("div", {}, { display: "flex", flexWrap: "wrap", gap: "6px", alignItems: "center" });
    this.swatch = el("span", {}, { width: "14px", height: "14px", borderRadius: "3px", border: "1px solid #000",
      display: "inline-block" });
    this.classSelect = el("select", { title: "class to paint" }, { fontSize: "12px", maxWidth: "120px" });
    this.classSelect.addEventListener("change", () => this.updateSwatch());
    this.size = slider("size", 1, 60, 20, "brush diameter, % of the picture");
    this.soft = slider("soft", 0, 100, 30, "soft edge, % of the radius");
    this.strength = slider("strength", 0, 100, 100, "how much of the class replaces what is below, %");
    const eraseWrap = el("label", { title: "paint the incoming map back" }, { fontSize: "11px" });
    this.erase = el("input", { type: "checkbox" });
    eraseWrap.append(this.erase, document.createTextNode(" eraser"));
    const undo = el("button", { textContent: "undo", title: "remove the last stroke" }, { fontSize: "11px" });
    undo.addEventListener("click", () => this.setStrokes(this.strokes().slice(0, -1), true));
    const clear = el("button", { textContent: "clear", title: "remove every stroke" }, { fontSize: "11px" });
    clear.addEventListener("click", () => this.setStrokes([], true));
    this.status = el("span", {}, { fontSize: "11px", opacity: "0.7" });
    bar.append(this.swatch, this.classSelect, this.size.wrap, this.soft.wrap, this.strength.wrap, eraseWrap, undo,
      clear, this.status);
    this.canvas = el("canvas", { width: CANVAS_PX, height: CANVAS_PX, className: "neural-collage-painter-canvas" },
      { flex: "1 1 auto", minHeight: "0", maxWidth: "100%", aspectRatio: "1", objectFit: "contain",
        alignSelf: "center", cursor: "crosshair", touchAction: "none", background: "#222",
        imageRendering: "pixelated" });
    for (const name of ["pointerdown", "pointermove", "pointerup", "pointercancel", "pointerleave"]) {
      this.canvas.addEventListener(name, (e) => this.onPointer(e));
    }
    this.root.append(bar, this.canvas);
  }

  setLabels(labels, colors) {
    if (!Array.isArray(labels) || !labels.length) return;
    const same = labels.length === this.labels.length && labels.every((l, i) => l === this.labels[i]);
    this.labels = labels;
    this.colors = colors || [];
    if (same) return;
    const keep = this.classSelect.value;
    this.classSelect.replaceChildren(...labels.map((l, i) => {
      const o = el("option", { value: l, textContent: `■ ${l}` });
      o.style.color = this.colors[i] || "";
      return o;
    }));
    const used = [...this.strokes()].reverse().find((s) => !s.erase)?.class;
    this.classSelect.value = labels.includes(keep) ? keep : labels.includes(used) ? used
      : labels[Math.min(1, labels.length - 1)];
    this.updateSwatch();
    this.redraw();
  }

  updateSwatch() {
    this.swatch.style.background = this.colorOf(this.classSelect.value);
  }

  colorOf(name) {
    const i = this.labels.indexOf(name);
    if (i >= 0 && this.colors[i]) return this.colors[i];
    const n = typeof name === "number" ? name : [...String(name)].reduce((a, c) => a * 31 + c.charCodeAt(0), 7);
    return `hsl(${(n * 137.5) % 360}, 80%, 55%)`;
  }

  // --------------------------------------------------------------------------------------------- the labels
  modelName() {
    return modelOf(this.node);
  }

  async refreshLabels() {
    const model = this.modelName();
    if (!model || model === this.labelsModel) return;
    this.labelsModel = model;
    try {
      const r = await api.fetchApi(`${LABELS_ROUTE}?model=${encodeURIComponent(model)}`);
      if (r.ok) {
        const data = await r.json();
        this.setLabels(data.labels, data.colors);
      }
    } catch (e) {
      console.warn("neural-collage painter: no labels for", model, e);
    }
  }

  onExecuted(output) {
    const labels = output?.paint_labels?.[0];
    if (labels) this.setLabels(labels.labels, labels.colors);
    const url = output?.paint_background?.[0];
    if (url && url !== this.backgroundUrl) {
      this.backgroundUrl = url;
      const img = new Image();
      img.onload = () => {
        this.background = img;
        this.redraw();
      };
      img.src = url;
    }
  }

  // -------------------------------------------------------------------------------------------- the strokes
  strokes() {
    try {
      const s = JSON.parse(this.strokesWidget?.value || "[]");
      return Array.isArray(s) ? s : [];
    } catch {
      return [];
    }
  }

  setStrokes(list, queue) {
    if (!this.strokesWidget) return;
    this.strokesWidget.value = JSON.stringify(list);
    this.strokesWidget.callback?.(this.strokesWidget.value);
    this.node.setDirtyCanvas?.(true, true);
    app.graph?.change?.();
    this.redraw();
    if (queue) this.schedule();
  }

  point(e) {
    // the square picture inside the element (object-fit: contain centres it when the element is not square)
    const r = this.canvas.getBoundingClientRect();
    const side = Math.min(r.width, r.height) || 1;
    const left = r.left + (r.width - side) / 2;
    const top = r.top + (r.height - side) / 2;
    return [round4((e.clientX - left) / side), round4((e.clientY - top) / side)];
  }

  onPointer(e) {
    e.stopPropagation();
    if (e.type === "pointerdown" && e.button === 0) {
      e.preventDefault();
      this.canvas.setPointerCapture?.(e.pointerId);
      const erase = this.erase.checked;
      this.current = { class: erase ? undefined : this.classSelect.value || "0",
        size: Number(this.size.input.value) / 100, softness: Number(this.soft.input.value) / 100,
        strength: Number(this.strength.input.value) / 100, erase, points: [this.point(e)] };
      if (erase) delete this.current.class;
      this.redraw();
    } else if (e.type === "pointermove") {
      this.hover = this.point(e);
      if (this.current) {
        const p = this.hover;
        const last = this.current.points[this.current.points.length - 1];
        if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 0.004) this.current.points.push(p);
      }
      this.redraw();
    } else if (e.type === "pointerup" || e.type === "pointercancel") {
      if (!this.current) return;
      const stroke = this.current;
      this.current = null;
      this.canvas.releasePointerCapture?.(e.pointerId);
      this.lastStrokeAt = performance.now();
      this.setStrokes([...this.strokes(), stroke], true);
    } else if (e.type === "pointerleave" && !this.current) {
      this.hover = null;
      this.redraw();
    }
  }

  // --------------------------------------------------------------------------------------------- queueing
  schedule() {
    this.dirty = true;
    clearTimeout(this.timer);
    const wait = Math.max(0, this.lastQueued + QUEUE_GAP_MS - performance.now());
    this.timer = setTimeout(() => this.flush(), wait);
  }

  async flush() {
    if (!this.dirty || this.busy) return; // a running prompt flushes again when it ends
    this.dirty = false;
    this.busy = true;
    this.lastQueued = performance.now();
    this.status.textContent = "running…";
    clearTimeout(this.stuck);
    this.stuck = setTimeout(() => this.done(), 60000);
    try {
      await app.queuePrompt(0, 1);
    } catch (e) {
      console.warn("neural-collage painter: queueing failed", e);
      this.done();
    }
  }

  onApiEvent() {
    if (this.busy) this.done();
  }

  done() {
    clearTimeout(this.stuck);
    this.busy = false;
    this.status.textContent = this.lastStrokeAt ? `${Math.round(performance.now() - this.lastStrokeAt)} ms` : "";
    if (this.dirty) this.schedule();
  }

  // ---------------------------------------------------------------------------------------------- drawing
  redraw() {
    const c = this.canvas.getContext("2d");
    const W = this.canvas.width;
    const H = this.canvas.height;
    c.clearRect(0, 0, W, H);
    if (this.background) {
      c.imageSmoothingEnabled = false;
      c.drawImage(this.background, 0, 0, W, H);
    } else {
      c.fillStyle = "#888";
      c.font = "14px sans-serif";
      c.fillText("run the graph to see the picture here", 12, 24);
    }
    this.overlay = this.overlay || document.createElement("canvas");
    const o = this.overlay;
    o.width = W;
    o.height = H;
    const oc = o.getContext("2d");
    const all = this.current ? [...this.strokes(), this.current] : this.strokes();
    for (const s of all) this.drawStroke(oc, s, W, H);
    c.globalAlpha = OVERLAY_ALPHA;
    c.drawImage(o, 0, 0);
    c.globalAlpha = 1;
    if (this.hover) {
      c.strokeStyle = "#fff";
      c.lineWidth = 1;
      c.beginPath();
      c.arc(this.hover[0] * W, this.hover[1] * H, (Number(this.size.input.value) / 200) * W, 0, 2 * Math.PI);
      c.stroke();
    }
  }

  drawStroke(c, s, W, H) {
    if (!Array.isArray(s?.points) || !s.points.length) return;
    const width = Math.max(1, (s.size || 0.1) * W);
    c.save();
    c.globalCompositeOperation = s.erase ? "destination-out" : "source-over";
    c.globalAlpha = s.strength ?? 1;
    c.filter = s.softness > 0 ? `blur(${(s.softness * width) / 6}px)` : "none";
    c.strokeStyle = c.fillStyle = s.erase ? "#000" : this.colorOf(s.class);
    c.lineWidth = width;
    c.lineCap = c.lineJoin = "round";
    c.beginPath();
    const [x0, y0] = s.points[0];
    if (s.points.length === 1) {
      c.arc(x0 * W, y0 * H, width / 2, 0, 2 * Math.PI);
      c.fill();
    } else {
      c.moveTo(x0 * W, y0 * H);
      for (const [x, y] of s.points.slice(1)) c.lineTo(x * W, y * H);
      c.stroke();
    }
    c.restore();
  }

  remove() {
    clearTimeout(this.timer);
    clearTimeout(this.stuck);
    for (const name of ["execution_success", "execution_error", "execution_interrupted"]) {
      api.removeEventListener(name, this.onEvent);
    }
  }
}

app.registerExtension({
  name: "neural-collage.painter",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData?.name !== NODE) return;
    const created = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const r = created?.apply(this, arguments);
      this.painter = new Painter(this);
      return r;
    };
    const executed = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      executed?.apply(this, arguments);
      this.painter?.onExecuted(output);
    };
    const configured = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const r = configured?.apply(this, arguments);
      const p = this.painter;
      if (p) {
        const [w, h] = this.size;
        this.setSize([Math.max(w, 320), Math.max(h, 520)]);
        p.hideStrokesText();
        p.labelsModel = null;
        setTimeout(() => p.refreshLabels(), 0);
        p.redraw();
      }
      return r;
    };
    const connections = nodeType.prototype.onConnectionsChange;
    nodeType.prototype.onConnectionsChange = function () {
      const r = connections?.apply(this, arguments);
      if (this.painter) setTimeout(() => this.painter.refreshLabels(), 0);
      return r;
    };
    const removed = nodeType.prototype.onRemoved;
    nodeType.prototype.onRemoved = function () {
      this.painter?.remove();
      return removed?.apply(this, arguments);
    };
  },
});
