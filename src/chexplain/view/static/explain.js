// chexplain view: an explain folder. The grid of radiographs (paged as it scrolls) and one
// image with its maps for every method and class.
"use strict";

V.explainGrid = function (root, s) {
  const grid = V.el("div", { class: "grid", id: "explain-grid" });
  const count = V.el("p", { class: "note" });
  const sentinel = V.el("div", { class: "sentinel" });
  root.append(V.el("h2", {}, "Explanations"), count, grid, sentinel);
  let offset = 0, total = Infinity, busy = false;
  const more = async () => {
    if (busy || offset >= total) return;
    busy = true;
    try {
      const page = await V.api("/api/explain/page", { s, offset, limit: 60 });
      total = page.total;
      count.textContent = `${total} image(s); click one to see its maps`;
      for (const it of page.items) {
        const href = `#/s/${s}/explain/${it.index}`;
        grid.append(V.el("a", { class: "card", href, "data-index": it.index },
          V.el("img", { src: V.url("/img/explain/thumb", { s, i: it.index }), alt: it.identity, loading: "lazy" }),
          V.el("div", { class: "caption" }, it.identity),
          V.el("div", { class: "small" }, it.top.map((t) => `${t.class} ${V.num(t.p, 2)}`).join(" · "))));
      }
      offset += page.items.length;
      V.ready("explain-grid");
    } catch (err) { V.error(root, err); }
    busy = false;
    if (offset < total && sentinel.getBoundingClientRect().top < window.innerHeight + 400) more();
  };
  new IntersectionObserver((entries) => { if (entries.some((e) => e.isIntersecting)) more(); },
    { rootMargin: "400px" }).observe(sentinel);
  more();
};

V.explainItem = async function (root, s, i, norm) {
  let d;
  try { d = await V.api("/api/explain/item", { s, i, norm: norm || "" }); } catch (err) { return V.error(root, err); }
  const zoom = new V.SyncZoom();
  let opacity = 0.6;
  const layers = [];
  const masks = [];
  const normSel = V.el("select", { id: "norm", "aria-label": "scaling" },
    ["", "symmetric", "percentile", "minmax"].map((n) => V.el("option", { value: n, selected: n === (norm || "") },
      n || "each method's own")));
  normSel.addEventListener("change", () => { V.clear(root); V.explainItem(root, s, i, normSel.value); });
  const gt = V.el("input", { type: "checkbox", checked: true, id: "truth" });
  gt.addEventListener("change", () => masks.forEach((m) => { m.hidden = !gt.checked; }));
  const nav = V.el("div", { class: "controls" },
    V.el("a", { href: `#/s/${s}/explain`, class: "button" }, "← all images"),
    i > 0 ? V.el("a", { href: `#/s/${s}/explain/${i - 1}`, class: "button" }, "previous") : null,
    V.el("a", { href: `#/s/${s}/explain/${i + 1}`, class: "button" }, "next"),
    V.opacity(opacity, (v) => { opacity = v; layers.forEach((l) => { l.style.opacity = v; }); }),
    V.el("label", { class: "control" }, "scaling ", normSel),
    V.el("label", { class: "control" }, gt, " ground truth"),
    V.el("button", { type: "button", onclick: () => zoom.reset() }, "reset zoom"));
  root.append(V.el("h2", { id: "item-title" }, d.identity), nav);
  if (!d.source) root.append(V.el("p", { class: "note" }, "The input image is no longer where the run read it: the stored overlays are shown."));
  const table = V.el("table", { class: "maps" });
  table.append(V.el("tr", {}, V.el("th", {}), d.methods.map((m) => V.el("th", {}, m))));
  for (const c of d.classes) {
    const tr = V.el("tr", {}, V.el("th", { class: "rowhead" }, c));
    for (const m of d.methods) {
      const mp = d.maps.find((x) => x.method === m && x.class === c);
      if (!mp) { tr.append(V.el("td", {}, "–")); continue; }
      const stage = V.el("div", { class: "stage" });
      if (d.source) stage.append(V.el("img", { class: "bg", src: V.url("/img/explain/bg", { s, i }), alt: "" }));
      const layer = V.el("img", { class: "layer", alt: `${m}: ${c}`,
        src: V.url("/img/explain/map", { s, i, m, c, norm: mp.norm, overlay: d.source && mp.raw ? "" : "1" }) });
      if (d.source && mp.raw) { layer.style.opacity = opacity; layers.push(layer); }
      stage.append(layer);
      if (mp.mask) {
        const mk = V.el("img", { class: "mask", src: V.url("/img/explain/mask", { s, i, c }), alt: "" });
        masks.push(mk); stage.append(mk);
      }
      const panel = V.el("div", { class: "panel" }, stage);
      zoom.add(panel, stage);
      const bar = V.el("div", { class: "colorbar" },
        V.el("img", { src: V.url("/img/colorbar", { cmap: mp.cmap }), alt: `colour map ${mp.cmap}` }),
        V.el("div", { class: "ends" }, V.el("span", {}, V.num(mp.scale && mp.scale.low)),
          V.el("span", {}, mp.norm), V.el("span", {}, V.num(mp.scale && mp.scale.high))));
      tr.append(V.el("td", {}, panel, bar));
    }
    table.append(tr);
  }
  root.append(table);
  const rows = d.findings.map((f) => V.el("tr", { class: d.classes.includes(f.class) ? "hl" : "" },
    V.el("td", {}, f.class), V.el("td", {}, V.num(f.p, 3)),
    V.el("td", {}, f.label === null || f.label === undefined ? "–" : String(f.label))));
  root.append(V.el("h3", {}, "Predictions"),
    V.el("table", { class: "data" }, V.el("tr", {}, V.el("th", {}, "finding"), V.el("th", {}, "probability"),
      V.el("th", {}, "label")), rows));
  if (d.figures.length) {
    root.append(V.el("h3", {}, "Figures of the run"), V.el("div", { class: "figures" },
      d.figures.map((f) => V.el("img", { src: V.url("/file", { s, p: `${d.folder}/${f}` }), alt: f, loading: "lazy" }))));
  }
  V.ready("explain-item");
};
