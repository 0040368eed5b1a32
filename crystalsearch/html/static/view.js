/* crystalsearch structure views: shared by the app and notebook outputs (3Dmol.js, loaded beforehand).
 * A view is a div.cs-view with data-colours (element -> colour) and its CIF text in data-cif, or data-src:
 * a URL returning CIF text. */
(function () {
  "use strict";

  function draw(el, cif) {
    if (el._viewer) { el._viewer.clear(); }
    const viewer = el._viewer || $3Dmol.createViewer(el, { backgroundColor: "white", antialias: true });
    if (!viewer) { el.textContent = "3D view unavailable (WebGL is off in this browser)"; return null; }
    el._viewer = viewer;
    const colours = JSON.parse(el.dataset.colours || "{}");
    const model = viewer.addModel(cif, "cif", { doAssembly: true, normalizeAssembly: true, duplicateAssemblyAtoms: true });
    bond(model.selectedAtoms({}));
    const scheme = { prop: "elem", map: colours };
    viewer.setStyle({}, { sphere: { scale: 0.3, colorscheme: scheme }, stick: { radius: 0.12, colorscheme: scheme } });
    viewer.addUnitCell(model, { box: { color: "#555" }, alabel: "a", blabel: "b", clabel: "c" });
    viewer.zoomTo();
    viewer.rotate(20, "y");
    viewer.rotate(15, "x");
    viewer.render();
    el.dataset.state = "ready";
    return viewer;
  }

  /* Bonds by distance: for each pair of elements, the pairs within 10% of that pair's shortest distance
   * (unlike elements up to 3.3 Å; like elements only when about as close as the nearest neighbours). */
  function bond(atoms) {
    if (atoms.length > 4000) { return; }
    const pairs = [], shortest = {};
    let nearest = Infinity;
    for (let i = 0; i < atoms.length; i++) {
      const a = atoms[i];
      a.bonds = []; a.bondOrder = [];
      for (let j = i + 1; j < atoms.length; j++) {
        const b = atoms[j], dx = a.x - b.x, dy = a.y - b.y, dz = a.z - b.z, d = Math.sqrt(dx * dx + dy * dy + dz * dz);
        if (d > 3.3 || d < 0.4) { continue; }
        const key = [a.elem, b.elem].sort().join("-");
        pairs.push([i, j, d, key]);
        shortest[key] = Math.min(shortest[key] || Infinity, d);
        nearest = Math.min(nearest, d);
      }
    }
    pairs.forEach(([i, j, d, key]) => {
      const like = atoms[i].elem === atoms[j].elem;
      if (d > 1.1 * shortest[key] || (like && shortest[key] > 1.2 * nearest)) { return; }
      atoms[i].bonds.push(atoms[j].index); atoms[i].bondOrder.push(1); atoms[j].bonds.push(atoms[i].index); atoms[j].bondOrder.push(1);
    });
  }

  function show(el) {
    if (!window.$3Dmol) { el.textContent = "3D view unavailable (3Dmol.js not loaded)"; return; }
    if (el.dataset.cif) { draw(el, el.dataset.cif); return; }
    if (!el.dataset.src) { return; }
    el.dataset.state = "loading";
    fetch(el.dataset.src, { credentials: "same-origin" })
      .then((r) => r.ok ? r.text() : r.text().then((t) => { throw new Error(t); }))
      .then((cif) => draw(el, cif))
      .catch((e) => { el.dataset.state = "error"; el.textContent = String(e.message || e); });
  }

  /* Draw every view under root not drawn yet (or all of them with force). */
  window.csViews = function (root, force) {
    (root || document).querySelectorAll(".cs-view").forEach((el) => {
      if (force || !el.dataset.state) { show(el); }
    });
  };
  window.csShow = show;
})();
