// chexplain view: a scatter plot on a canvas, drawn by hand (100,000 points in a few ms).
// A click selects the nearest point, a drag draws a lasso; shift adds to the selection.
"use strict";

V.Scatter = class {
  constructor(canvas, onSelect) {
    this.canvas = canvas; this.onSelect = onSelect;
    this.x = []; this.y = []; this.code = []; this.levels = [];
    this.selected = new Set(); this.hidden = new Set();
    this.sx = new Float32Array(0); this.sy = new Float32Array(0);
    this.lasso = null;
    canvas.addEventListener("pointerdown", (ev) => this.down(ev));
  }
  setData(p) {
    this.x = p.x; this.y = p.y; this.code = p.code; this.levels = p.levels;
    this.layout(); this.draw();
  }
  setColours(code, levels) { this.code = code; this.levels = levels; this.draw(); }
  setSelection(rows) { this.selected = new Set(rows); this.draw(); }
  layout() {
    const c = this.canvas, ratio = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    c.width = Math.round(w * ratio); c.height = Math.round(h * ratio);
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < this.x.length; i++) {
      const x = this.x[i], y = this.y[i];
      if (x === null || y === null) continue;
      if (x < x0) x0 = x; if (x > x1) x1 = x; if (y < y0) y0 = y; if (y > y1) y1 = y;
    }
    if (!(x1 >= x0)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    const pad = 12, dx = (x1 - x0) || 1, dy = (y1 - y0) || 1;
    this.sx = new Float32Array(this.x.length); this.sy = new Float32Array(this.x.length);
    for (let i = 0; i < this.x.length; i++) {
      if (this.x[i] === null || this.y[i] === null) { this.sx[i] = NaN; this.sy[i] = NaN; continue; }
      this.sx[i] = pad + (this.x[i] - x0) / dx * (w - 2 * pad);
      this.sy[i] = h - pad - (this.y[i] - y0) / dy * (h - 2 * pad);
    }
  }
  draw() {
    const c = this.canvas, g = c.getContext("2d"), ratio = window.devicePixelRatio || 1;
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, c.clientWidth, c.clientHeight);
    const n = this.sx.length, r = n > 20000 ? 1.5 : n > 2000 ? 2.5 : 4;
    const dim = this.selected.size > 0;
    for (let k = 0; k < this.levels.length; k++) {
      if (this.hidden.has(k)) continue;
      g.fillStyle = V.PALETTE[k % V.PALETTE.length];
      g.globalAlpha = dim ? 0.25 : 0.8;
      for (let i = 0; i < n; i++) {
        if (this.code[i] !== k || Number.isNaN(this.sx[i])) continue;
        g.fillRect(this.sx[i] - r, this.sy[i] - r, 2 * r, 2 * r);
      }
    }
    g.globalAlpha = 1;
    if (dim) {
      g.strokeStyle = "#111";
      g.lineWidth = 1;
      for (const i of this.selected) {
        if (Number.isNaN(this.sx[i])) continue;
        g.fillStyle = V.PALETTE[this.code[i] % V.PALETTE.length];
        g.fillRect(this.sx[i] - r - 1, this.sy[i] - r - 1, 2 * r + 2, 2 * r + 2);
        g.strokeRect(this.sx[i] - r - 1, this.sy[i] - r - 1, 2 * r + 2, 2 * r + 2);
      }
    }
    if (this.lasso && this.lasso.length > 1) {
      g.strokeStyle = "#000"; g.setLineDash([4, 3]); g.beginPath();
      g.moveTo(this.lasso[0][0], this.lasso[0][1]);
      for (const [x, y] of this.lasso) g.lineTo(x, y);
      g.closePath(); g.stroke(); g.setLineDash([]);
    }
  }
  point(ev) { const b = this.canvas.getBoundingClientRect(); return [ev.clientX - b.left, ev.clientY - b.top]; }
  down(ev) {
    ev.preventDefault();
    const start = this.point(ev), add = ev.shiftKey;
    this.lasso = [start];
    const move = (e) => { this.lasso.push(this.point(e)); this.draw(); };
    const up = (e) => {
      window.removeEventListener("pointermove", move); window.removeEventListener("pointerup", up);
      const path = this.lasso; this.lasso = null;
      const end = this.point(e);
      const far = path.length > 2 && path.some(([x, y]) => Math.hypot(x - start[0], y - start[1]) > 6);
      const found = far ? this.inside(path) : this.nearest(end[0], end[1], 8);
      const sel = add ? new Set([...this.selected, ...found]) : new Set(found);
      this.selected = sel; this.draw(); this.onSelect([...sel].sort((a, b) => a - b));
    };
    window.addEventListener("pointermove", move); window.addEventListener("pointerup", up);
  }
  visible(i) { return !Number.isNaN(this.sx[i]) && !this.hidden.has(this.code[i]); }
  nearest(px, py, within) {
    let best = -1, bd = within * within;
    for (let i = 0; i < this.sx.length; i++) {
      if (!this.visible(i)) continue;
      const d = (this.sx[i] - px) ** 2 + (this.sy[i] - py) ** 2;
      if (d <= bd) { bd = d; best = i; }
    }
    return best < 0 ? [] : [best];
  }
  inside(poly) {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const [x, y] of poly) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    const out = [];
    for (let i = 0; i < this.sx.length; i++) {
      const x = this.sx[i], y = this.sy[i];
      if (!this.visible(i) || x < x0 || x > x1 || y < y0 || y > y1) continue;
      let inPoly = false;
      for (let a = 0, b = poly.length - 1; a < poly.length; b = a++) {
        const [xa, ya] = poly[a], [xb, yb] = poly[b];
        if ((ya > y) !== (yb > y) && x < (xb - xa) * (y - ya) / (yb - ya) + xa) inPoly = !inPoly;
      }
      if (inPoly) out.push(i);
    }
    return out;
  }
};
