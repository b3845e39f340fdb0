// chexplain view: an audit folder. Per class the embedding as a scatter (coloured by cluster,
// label, prediction or a metadata column), the selected members' images and maps (paged), a
// CSV of the selection, and each cluster's distinctive region, counterfactual and typical
// members beside the report's prototype figures.
"use strict";

V.audit = async function (root, s, cls) {
  let d;
  try { d = await V.api("/api/audit", { s }); } catch (err) { return V.error(root, err); }
  if (!d.classes.length) { root.append(V.el("p", { class: "note" }, "This audit holds no class.")); return V.ready("audit"); }
  const name = d.classes.some((c) => c.name === cls) ? cls : d.classes[0].name;
  const info = d.classes.find((c) => c.name === name);
  const classSel = V.el("select", { id: "audit-class", "aria-label": "class" },
    d.classes.map((c) => V.el("option", { value: c.name, selected: c.name === name }, c.name)));
  classSel.addEventListener("change", () => { location.hash = `#/s/${s}/audit/${encodeURIComponent(classSel.value)}`; });
  const colourSel = V.el("select", { id: "colour-by", "aria-label": "colour by" },
    d.colour_by.map((c) => V.el("option", { value: c }, c)));
  root.append(V.el("h2", {}, "Audit (SpRAy)"),
    V.el("div", { class: "controls" }, V.el("label", { class: "control" }, "class ", classSel),
      V.el("label", { class: "control" }, "colour by ", colourSel)),
    V.el("p", { class: "note", id: "class-note" }, `${info.name}: ${info.images} image(s) (${info.population}), ` +
      `${info.n_clusters} cluster(s). ${info.note || ""}`));
  if (!info.n_clusters) { V.ready("audit"); return; }
  const canvas = V.el("canvas", { id: "scatter", width: 640, height: 480 });
  const legend = V.el("div", { class: "legend", id: "legend" });
  const selection = V.el("div", { id: "selection" });
  root.append(V.el("div", { class: "split" },
    V.el("div", { class: "plot" }, canvas, V.el("p", { class: "note" },
      "Click a point, or drag a lasso around several (shift adds); click a legend entry to select its members."), legend),
    selection));
  const clusterBox = V.el("div", { id: "clusters" });
  root.append(V.el("h3", {}, "Clusters"), clusterBox);
  let clusterOf = [], clusters = [];
  const sel = { rows: [], page: 0 };
  const scatter = new V.Scatter(canvas, (rows) => { sel.rows = rows; sel.page = 0; showSelection(); });
  const drawLegend = (p) => {
    V.clear(legend);
    const counts = new Array(p.levels.length).fill(0);
    for (const c of p.code) counts[c]++;
    p.levels.forEach((lv, k) => legend.append(V.el("button", { type: "button", class: "swatch", "data-level": lv,
      onclick: () => { const rows = []; p.code.forEach((c, i) => { if (c === k) rows.push(i); });
        scatter.setSelection(rows); sel.rows = rows; sel.page = 0; showSelection(); } },
    V.el("span", { class: "dot", "data-colour": k % V.PALETTE.length }), `${lv} (${counts[k]})`)));
    legend.querySelectorAll(".dot").forEach((dot) => { dot.style.background = V.PALETTE[Number(dot.dataset.colour)]; });
  };
  const showSelection = async () => {
    V.clear(selection);
    const n = sel.rows.length;
    selection.append(V.el("h3", {}, `${n} member(s) selected`));
    if (!n) { selection.append(V.el("p", { class: "note" }, "Nothing selected yet.")); return; }
    const per = 24, pages = Math.ceil(n / per);
    const rows = sel.rows.slice(sel.page * per, (sel.page + 1) * per);
    selection.append(V.el("div", { class: "controls" },
      V.el("button", { type: "button", id: "export", onclick: () => exportCsv() }, "export CSV"),
      V.el("button", { type: "button", onclick: () => { scatter.setSelection([]); sel.rows = []; showSelection(); } }, "clear"),
      pages > 1 ? V.el("button", { type: "button", disabled: sel.page === 0, onclick: () => { sel.page--; showSelection(); } }, "◀") : null,
      pages > 1 ? V.el("span", {}, `page ${sel.page + 1} of ${pages}`) : null,
      pages > 1 ? V.el("button", { type: "button", disabled: sel.page >= pages - 1, onclick: () => { sel.page++; showSelection(); } }, "▶") : null));
    let recs = [];
    try { recs = await V.api("/api/audit/rows", { s, c: name, rows: rows.join(",") }); } catch (err) { return V.error(selection, err); }
    const grid = V.el("div", { class: "grid members", id: "members" });
    for (const r of recs) {
      grid.append(V.el("button", { type: "button", class: "card member", "data-row": r.row, onclick: () => member(r) },
        V.el("img", { src: V.url("/img/audit/member", { s, c: name, r: r.row }), alt: r.image, loading: "lazy" }),
        V.el("div", { class: "caption" }, r.image.split("/").slice(-3).join("/")),
        V.el("div", { class: "small" }, `cluster ${r.cluster} · p ${V.num(r.probability, 2)}`)));
    }
    selection.append(grid, V.el("div", { id: "member" }));
    V.ready("audit-selection");
  };
  const exportCsv = async () => {
    const r = await fetch("/api/audit/export", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ s, c: name, rows: sel.rows }) });
    const blob = await r.blob();
    const a = V.el("a", { href: URL.createObjectURL(blob), download: `${name.replace(/[^A-Za-z0-9]+/g, "_")}_members.csv` });
    document.body.append(a); a.click(); a.remove();
  };
  const member = (r) => {
    const box = V.clear(document.getElementById("member"));
    const cl = clusters.find((c) => c.id === r.cluster);
    const stage = V.el("div", { class: "stage" },
      V.el("img", { class: "bg", src: V.url("/img/audit/member", { s, c: name, r: r.row, layer: "image" }), alt: "" }));
    const layer = V.el("img", { class: "layer", src: V.url("/img/audit/member", { s, c: name, r: r.row, layer: "map" }), alt: "relevance" });
    layer.style.opacity = 0.5;
    stage.append(layer, V.el("img", { class: "mask", src: V.url("/img/audit/member", { s, c: name, r: r.row, layer: "finding" }),
      alt: "", onerror: (ev) => { ev.target.hidden = true; } }));
    if (cl && cl.distinctive_region) stage.append(V.regionBox(cl.distinctive_region));
    const panel = V.el("div", { class: "panel large" }, stage);
    const zoom = new V.SyncZoom(); zoom.add(panel, stage);
    box.append(V.el("h3", {}, r.image), V.opacity(0.5, (v) => { layer.style.opacity = v; }), panel,
      V.el("table", { class: "data" },
        [["cluster", r.cluster], ["label", r.label === null ? "unknown" : r.label], ["probability", V.num(r.probability)],
          ...Object.entries(r.meta)].map(([k, v]) => V.el("tr", {}, V.el("th", {}, k), V.el("td", {}, String(v))))),
      V.el("p", { class: "note" }, "bwr, symmetric at the map's largest |R|; the cluster's distinctive region boxed; the finding outlined when known."));
  };
  try {
    const [pts, cl] = await Promise.all([V.api("/api/audit/points", { s, c: name, by: "cluster" }),
      V.api("/api/audit/clusters", { s, c: name })]);
    clusterOf = pts.code; clusters = cl;
    scatter.setData(pts); drawLegend(pts);
    V.ready("audit");
    V.auditClusters(clusterBox, s, name, clusters, info, (id) => {
      const rows = []; clusterOf.forEach((c, i) => { if (pts.levels[c] === String(id)) rows.push(i); });
      scatter.setSelection(rows); sel.rows = rows; sel.page = 0; showSelection();
      canvas.scrollIntoView({ block: "nearest" });
    });
  } catch (err) { return V.error(root, err); }
  colourSel.addEventListener("change", async () => {
    try {
      const p = colourSel.value === "cluster" ? null : await V.api("/api/audit/points", { s, c: name, by: colourSel.value });
      const use = p || (await V.api("/api/audit/points", { s, c: name, by: "cluster" }));
      scatter.setColours(use.code, use.levels); drawLegend(use);
    } catch (err) { V.error(root, err); }
  });
};

// The distinctive region as a box over a 64-px member (bbox is [row0, col0, row1, col1] at side px).
V.regionBox = function (region) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${region.side} ${region.side}`);
  svg.setAttribute("class", "region");
  const [r0, c0, r1, c1] = region.bbox;
  const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
  rect.setAttribute("x", c0); rect.setAttribute("y", r0);
  rect.setAttribute("width", c1 - c0 + 1); rect.setAttribute("height", r1 - r0 + 1);
  svg.append(rect);
  return svg;
};

V.auditClusters = function (box, s, name, clusters, info, select) {
  for (const c of clusters) {
    const r = c.distinctive_region, cf = c.counterfactual;
    const typical = V.el("div", { class: "grid typical" }, c.typical_rows.map((row) => V.el("div", { class: "stage-static" },
      V.el("img", { src: V.url("/img/audit/member", { s, c: name, r: row }), alt: `typical member of cluster ${c.id}`, loading: "lazy" }),
      r ? V.regionBox(r) : null)));
    box.append(V.el("div", { class: "cluster " + (c.flagged ? "flagged" : ""), "data-cluster": c.id },
      V.el("h4", {}, `cluster ${c.id}: ${c.size} image(s), ${V.pct(c.fraction)} — ${c.verdict}`),
      V.el("p", {}, c.sentence || ""),
      V.el("p", { class: "small" }, r ? `distinctive region: ${r.words}` : "no distinctive region",
        cf ? ` · counterfactual effect ${V.num(cf.effect, 2)} [${V.num(cf.ci_low, 2)}, ${V.num(cf.ci_high, 2)}], p = ${V.num(cf.p_value, 2)}` : ""),
      V.el("button", { type: "button", onclick: () => select(c.id) }, "select its members"), typical));
  }
  if (info.figures.length) box.append(V.el("h3", {}, "The report's figures (prototypes, embedding, spectrum)"),
    V.el("div", { class: "figures" }, info.figures.map((f) => V.el("img", { src: V.url("/file", { s, p: f }), alt: f, loading: "lazy" }))));
};
