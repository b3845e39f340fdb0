// chexplain view: shared helpers. Every piece of data reaches the page as text
// (createElement / textContent / setAttribute), never as HTML.
"use strict";
const V = {};

V.el = function (tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    e.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return e;
};

V.url = function (path, params) {
  return path + "?" + new URLSearchParams(params || {}).toString();
};

V.api = async function (path, params) {
  const r = await fetch(V.url(path, params));
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
};

V.num = function (v, digits) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  return Number(v).toPrecision(digits || 3);
};

V.pct = (v) => (v === null || v === undefined ? "–" : Math.round(v * 100) + " %");

V.clear = function (node) { while (node.firstChild) node.removeChild(node.firstChild); return node; };

V.error = function (root, err) {
  root.append(V.el("p", { class: "error" }, "Could not load: " + (err && err.message || err)));
};

V.ready = function (state) { document.getElementById("app").dataset.state = state; };

// 12 colours that stay apart (Tableau 10 and two more)
V.PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
  "#ff9da7", "#9c755f", "#bab0ac", "#1f1f7a", "#7a1f3d"];

// Zoom and pan shared by every panel of a view: wheel zooms, dragging pans, all in step.
V.SyncZoom = class {
  constructor() { this.scale = 1; this.tx = 0; this.ty = 0; this.stages = []; }
  add(panel, stage) {
    this.stages.push(stage);
    panel.addEventListener("wheel", (ev) => {
      ev.preventDefault();
      const r = panel.getBoundingClientRect();
      const px = ev.clientX - r.left, py = ev.clientY - r.top;
      const f = ev.deltaY < 0 ? 1.25 : 0.8;
      const s = Math.min(16, Math.max(1, this.scale * f));
      const k = s / this.scale;
      this.tx = px - k * (px - this.tx); this.ty = py - k * (py - this.ty); this.scale = s;
      this.apply(r.width, r.height);
    }, { passive: false });
    panel.addEventListener("pointerdown", (ev) => {
      const r = panel.getBoundingClientRect();
      const x0 = ev.clientX, y0 = ev.clientY, tx0 = this.tx, ty0 = this.ty;
      const move = (e) => { this.tx = tx0 + e.clientX - x0; this.ty = ty0 + e.clientY - y0; this.apply(r.width, r.height); };
      const up = () => { window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up); };
      window.addEventListener("pointermove", move); window.addEventListener("pointerup", up);
    });
  }
  apply(w, h) {
    if (this.scale <= 1) { this.scale = 1; this.tx = 0; this.ty = 0; }
    this.tx = Math.min(0, Math.max(w - w * this.scale, this.tx));
    this.ty = Math.min(0, Math.max(h - h * this.scale, this.ty));
    const t = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    for (const s of this.stages) s.style.transform = t;
  }
  reset() { this.scale = 1; this.apply(0, 0); }
};

// An opacity slider whose value is applied to every map layer of a view.
V.opacity = function (initial, onChange) {
  const input = V.el("input", { type: "range", min: 0, max: 1, step: 0.05, value: initial, id: "opacity",
    "aria-label": "map opacity" });
  const label = V.el("span", { class: "value" }, String(initial));
  input.addEventListener("input", () => { label.textContent = input.value; onChange(Number(input.value)); });
  return V.el("label", { class: "control" }, "map opacity ", input, label);
};
