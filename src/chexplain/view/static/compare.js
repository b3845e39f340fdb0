// chexplain view: a compare folder. The metric table with its intervals; a method's best and
// worst items under the chosen metric.
"use strict";

V.compare = async function (root, s) {
  let d;
  try { d = await V.api("/api/compare", { s }); } catch (err) { return V.error(root, err); }
  root.append(V.el("h2", {}, "Comparison of methods"),
    V.el("p", { class: "note" }, `${d.n_items} item(s) of ${d.n_images} image(s); classes ${d.classes.join(", ")}. ` +
      "Mean over items [95 % bootstrap interval]. Click a method for its best and worst items."));
  const metricSel = V.el("select", { id: "metric", "aria-label": "metric" },
    d.metrics.map((m) => V.el("option", { value: m, selected: m === (d.metrics.includes("relevance_mass") ? "relevance_mass" : d.metrics[0]) }, m)));
  const table = V.el("table", { class: "data", id: "compare-table" });
  table.append(V.el("tr", {}, V.el("th", {}, "method"), d.metrics.map((m) =>
    V.el("th", { title: d.labels[m] }, m + (d.higher_is_better[m] ? " ↑" : " ↓")))));
  const detail = V.el("div", { id: "extremes" });
  let chosen = null;
  const show = async (method) => {
    chosen = method;
    table.querySelectorAll("tr.method").forEach((r) => r.classList.toggle("hl", r.dataset.method === method));
    V.clear(detail);
    let e;
    try { e = await V.api("/api/compare/extremes", { s, method, metric: metricSel.value, n: 6 }); } catch (err) { return V.error(detail, err); }
    detail.append(V.el("h3", {}, `${method}: best and worst items by ${e.metric} (${e.n} scored)`));
    for (const [name, list] of [["best", e.best], ["worst", e.worst]]) {
      detail.append(V.el("h4", {}, name), V.el("div", { class: "grid small-cards", "data-kind": name },
        list.map((it) => V.el("div", { class: "card" },
          V.el("div", { class: "stage-static" },
            V.el("img", { src: V.url("/img/compare/item", { s, row: it.row }), alt: it.image, loading: "lazy" }),
            V.el("img", { class: "mask", src: V.url("/img/compare/mask", { s, row: it.row }), alt: "", loading: "lazy",
              onerror: (ev) => { ev.target.hidden = true; } })),
          V.el("div", { class: "caption" }, it.image.split("/").slice(-3).join("/")),
          V.el("div", { class: "small" }, `${it.class}: ${e.metric} = ${V.num(it.value)}`)))));
    }
    V.ready("compare-extremes");
  };
  for (const m of d.methods) {
    const row = d.summary[m] || {};
    table.append(V.el("tr", { class: "method", "data-method": m },
      V.el("td", {}, V.el("button", { type: "button", class: "link", onclick: () => show(m) }, m)),
      d.metrics.map((k) => {
        const v = row[k] || {};
        return V.el("td", { title: `n = ${v.n}` }, V.num(v.mean),
          v.ci_low === null || v.ci_low === undefined ? "" : V.el("span", { class: "ci" }, ` [${V.num(v.ci_low)}, ${V.num(v.ci_high)}]`));
      })));
  }
  metricSel.addEventListener("change", () => { if (chosen) show(chosen); });
  root.append(table, V.el("div", { class: "controls" }, V.el("label", { class: "control" }, "best and worst by ", metricSel)),
    detail);
  if (d.perturbation) root.append(V.el("p", { class: "note" }, d.perturbation));
  if (d.plots.length) root.append(V.el("h3", {}, "Plots of the run"), V.el("div", { class: "figures" },
    d.plots.map((p) => V.el("img", { src: V.url("/file", { s, p }), alt: p, loading: "lazy" }))));
  V.ready("compare");
};
