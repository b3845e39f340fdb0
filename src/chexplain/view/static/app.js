// chexplain view: the page's router. #/s/<section>/<kind>[/<item>] picks a view.
"use strict";

V.info = null;

V.route = async function () {
  const root = V.clear(document.getElementById("app"));
  V.ready("loading");
  if (!V.info) {
    try { V.info = await V.api("/api/info"); } catch (err) { return V.error(root, err); }
    document.getElementById("root-name").textContent =
      V.info.root === V.info.kind ? V.info.root : `${V.info.root} (${V.info.kind})`;
    const nav = document.getElementById("sections");
    for (const sec of V.info.sections) {
      nav.append(V.el("a", { href: `#/s/${sec.id}/${sec.kind}`, "data-section": sec.id },
        sec.name === "." || sec.name === sec.kind ? sec.kind : `${sec.name} (${sec.kind})`));
    }
  }
  const parts = location.hash.replace(/^#\/?/, "").split("/").map(decodeURIComponent);
  let s = 0, arg = null;
  if (parts[0] === "s" && parts.length >= 2) { s = Number(parts[1]) || 0; arg = parts.length > 3 ? parts.slice(3).join("/") : null; }
  const sec = V.info.sections[s] || V.info.sections[0];
  document.querySelectorAll("#sections a").forEach((a) => a.classList.toggle("active", Number(a.dataset.section) === sec.id));
  if (sec.kind === "explain") {
    if (arg !== null && /^\d+$/.test(arg)) return V.explainItem(root, sec.id, Number(arg));
    return V.explainGrid(root, sec.id);
  }
  if (sec.kind === "compare") return V.compare(root, sec.id);
  if (sec.kind === "audit") return V.audit(root, sec.id, arg);
};

window.addEventListener("hashchange", V.route);
V.route();
