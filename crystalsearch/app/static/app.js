/* crystalsearch app: the page's behaviour. Tables and views come from the server (crystalsearch.html);
 * this file wires the forms, the Look panel, sorting, progress polling and the map canvas. */
(function () {
  "use strict";
  const $ = (id) => document.getElementById(id);
  const state = { ready: false, queries: [], query: null, hit: null };
  window.__app = state;

  async function api(url, options) {
    const r = await fetch(url, Object.assign({ credentials: "same-origin" }, options || {}));
    let body = null;
    try { body = await r.json(); } catch (e) { body = { error: `${r.status} ${r.statusText}` }; }
    if (!r.ok && !body.error && !body.field_errors) { body.error = `${r.status} ${r.statusText}`; }
    return body;
  }
  function escapeHtml(s) { const d = document.createElement("div"); d.textContent = String(s); return d.innerHTML; }
  function showErrors(el, messages) { el.innerHTML = messages.map((m) => `<p>${escapeHtml(m)}</p>`).join(""); }

  /* -- status ------------------------------------------------------------------------------------------ */
  async function poll() {
    const s = await api("api/status");
    const el = $("status");
    if (s.ready) {
      el.className = "status"; el.textContent = `${s.materials.toLocaleString()} materials · ${s.index}`;
      state.ready = true;
      $("map-prop").innerHTML = s.properties.map((p) => `<option value="${p.column}">${p.label} (${p.unit})</option>`).join("")
        + '<option value="density">density (g/cm^3)</option><option value="volume_per_atom">volume per atom (Å^3)</option>';
      $("map-prop").value = "band_gap";
      window.__ready = true;
      return;
    }
    el.className = s.error ? "status bad" : "status busy";
    el.textContent = s.error ? s.error : `${s.message} (${s.elapsed_s} s)`;
    const bar = $("build-progress");
    if (s.build) { bar.hidden = false; bar.max = s.build.total; bar.value = s.build.done; bar.title = `${s.build.done} / ${s.build.total} crystals embedded`; }
    if (!s.error) { setTimeout(poll, 1000); }
  }

  /* -- tabs and routes --------------------------------------------------------------------------------- */
  function route() {
    const hash = location.hash.replace(/^#/, "") || "search";
    const [tab, arg] = hash.split("/");
    const name = ["search", "material", "novelty", "map"].includes(tab) ? tab : "search";
    document.querySelectorAll(".tab").forEach((s) => { s.hidden = s.id !== `tab-${name}`; });
    document.querySelectorAll("nav a").forEach((a) => a.classList.toggle("active", a.dataset.tab === name));
    if (name === "material" && arg) { openMaterial(decodeURIComponent(arg)); }
    if (name === "map" && state.ready) { drawMap(); }
  }
  window.addEventListener("hashchange", route);

  /* -- sortable tables --------------------------------------------------------------------------------- */
  function sortable(root) {
    root.querySelectorAll("table.cs-table").forEach((table) => {
      table.querySelectorAll("th").forEach((th, i) => th.addEventListener("click", () => {
        const num = th.dataset.type === "num";
        const dir = th.dataset.dir === "asc" ? -1 : 1;
        th.dataset.dir = dir === 1 ? "asc" : "desc";
        const rows = Array.from(table.tBodies[0].rows);
        const key = (r) => { const t = r.cells[i].textContent.trim(); return num ? (t === "" ? -Infinity : parseFloat(t)) : t; };
        rows.sort((a, b) => { const x = key(a), y = key(b); return (x > y ? 1 : x < y ? -1 : 0) * dir; });
        rows.forEach((r) => table.tBodies[0].appendChild(r));
      }));
    });
  }

  /* -- drop zones -------------------------------------------------------------------------------------- */
  function dropZone(zone, input, label) {
    const files = [];
    const show = () => { label.textContent = files.length ? `${files.length} file(s): ${files.map((f) => f.name).slice(0, 6).join(", ")}` : ""; };
    input.addEventListener("change", () => { files.length = 0; files.push(...input.files); show(); });
    zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
    zone.addEventListener("dragleave", () => zone.classList.remove("over"));
    zone.addEventListener("drop", (e) => { e.preventDefault(); zone.classList.remove("over"); files.length = 0; files.push(...e.dataTransfer.files); show(); });
    return files;
  }
  const searchFiles = dropZone($("drop"), $("files"), $("picked"));
  const noveltyFiles = dropZone($("novelty-drop"), $("novelty-files"), $("novelty-picked"));

  /* -- search and look --------------------------------------------------------------------------------- */
  async function runSearch(ev) {
    if (ev) { ev.preventDefault(); }
    const form = new FormData();
    searchFiles.forEach((f) => form.append("files", f, f.name));
    ["text", "by", "weight", "k", "where"].forEach((n) => form.append(n, $(n).value));
    document.querySelectorAll("#search-form .field-error").forEach((e) => { e.textContent = ""; });
    $("search-errors").innerHTML = ""; $("results").innerHTML = ""; $("predict").innerHTML = "";
    $("search-button").disabled = true; $("search-time").textContent = "searching…";
    const res = await api("api/search", { method: "POST", body: form });
    $("search-button").disabled = false; $("search-time").textContent = "";
    if (res.field_errors) {
      Object.entries(res.field_errors).forEach(([k, v]) => document.querySelectorAll(`.field-error[data-for="${k}"]`).forEach((e) => { e.textContent = v; }));
      return;
    }
    if (res.error) { showErrors($("search-errors"), [res.error]); return; }
    $("search-time").textContent = `server time ${res.seconds.toFixed(3)} s`;
    showErrors($("search-errors"), res.results.filter((r) => r.error).map((r) => r.error));
    state.queries = res.results.filter((r) => !r.error);
    $("results").innerHTML = state.queries.map((r, i) => `<div class="result" data-q="${i}">${r.html}</div>`).join("");
    sortable($("results"));
    $("results").querySelectorAll(".result").forEach((div) => {
      const q = state.queries[+div.dataset.q];
      div.querySelectorAll("tbody tr").forEach((tr) => tr.addEventListener("click", (e) => {
        if (e.target.closest("a")) { return; }
        look(q, tr.dataset.id, tr);
      }));
    });
    if (state.queries.length) {
      const q = state.queries[0];
      const first = $("results").querySelector(".result tbody tr");
      look(q, first ? first.dataset.id : null, first);
    }
  }
  $("search-form").addEventListener("submit", runSearch);

  function cellParams() { return `cell=${$("cell").value}&supercell=${$("supercell").checked ? 2 : 1}`; }
  function elementsOf(formula) { return Array.from(new Set((formula || "").match(/[A-Z][a-z]?/g) || [])).sort(); }
  /* One 3D view of the Look panel: the structure at src, its caption, and a legend in the view's colours. */
  async function show3d(which, src, elements, caption) {
    const map = await coloursReady, view = $(`view-${which}`);
    const colours = Object.fromEntries(elements.map((e) => [e, map[e] || "#ff1493"]));
    view.dataset.src = src; view.dataset.colours = JSON.stringify(colours); delete view.dataset.state;
    $(`cap-${which}`).textContent = caption;
    $(`legend-${which}`).className = "cs-legend";
    $(`legend-${which}`).innerHTML = elements.map((e) => `<span class="cs-el"><i style="background:${colours[e]}"></i>${escapeHtml(e)}</span>`).join("");
    window.csShow(view);
  }

  function look(q, hitId, tr) {
    state.query = q; state.hit = hitId;
    document.querySelectorAll(".cs-hits-table tr.cs-selected").forEach((r) => r.classList.remove("cs-selected"));
    if (tr) { tr.classList.add("cs-selected"); }
    $("look").hidden = false;
    const hit = (q.hits || []).find((h) => h.material_id === hitId);
    show3d("query", `api/structure?key=${q.key}&${cellParams()}`, elementsOf(q.formula), `query: ${q.query} (${q.formula})`);
    if (hit) {
      const id = encodeURIComponent(hitId);
      show3d("hit", `api/structure?id=${id}&${cellParams()}`, elementsOf(hit.formula),
        `#${hit.rank} ${hitId} ${hit.formula} · similarity ${hit.similarity.toFixed(4)}`);
      $("download-hit").href = `api/structure?id=${id}&${cellParams()}&download=1`;
    }
  }
  ["cell", "supercell"].forEach((id) => $(id).addEventListener("change", () => {
    if (state.query) { look(state.query, state.hit, document.querySelector(".cs-hits-table tr.cs-selected")); }
  }));

  $("predict-button").addEventListener("click", async () => {
    if (!state.query) { return; }
    $("predict").innerHTML = '<p class="note">predicting…</p>';
    const res = await api("api/predict", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ key: state.query.key }) });
    if (res.error) { $("predict").innerHTML = `<p class="cs-error">${escapeHtml(res.error)}</p>`; return; }
    $("predict").innerHTML = `<h3>Predicted properties</h3>${res.html}<p class="note">${escapeHtml(res.note)} · ${res.seconds} s</p>`;
    sortable($("predict"));
  });
  $("map-button").addEventListener("click", () => { location.hash = "#map"; });

  /* -- material page ----------------------------------------------------------------------------------- */
  async function openMaterial(id) {
    $("material-id").value = id;
    $("material-body").innerHTML = '<p class="note">loading…</p>';
    const res = await api(`api/material/${encodeURIComponent(id)}`);
    if (res.error) { $("material-body").innerHTML = `<p class="cs-error">${escapeHtml(res.error)}</p>`; return; }
    $("material-body").innerHTML = res.html;
    sortable($("material-body")); window.csViews($("material-body"));
    $("material-body").querySelectorAll("[data-search-id]").forEach((a) => a.addEventListener("click", (e) => {
      e.preventDefault(); $("text").value = a.dataset.searchId; location.hash = "#search"; runSearch();
    }));
  }
  $("material-form").addEventListener("submit", (e) => { e.preventDefault(); location.hash = `#material/${encodeURIComponent($("material-id").value.trim())}`; });

  /* -- novelty ----------------------------------------------------------------------------------------- */
  $("novelty-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData();
    noveltyFiles.forEach((f) => form.append("files", f, f.name));
    form.append("folder", $("folder").value);
    $("novelty-errors").innerHTML = ""; $("novelty-result").innerHTML = ""; $("novelty-downloads").hidden = true;
    const res = await api("api/novelty", { method: "POST", body: form });
    if (res.error) { showErrors($("novelty-errors"), [res.error]); return; }
    const bar = $("novelty-progress"); bar.hidden = false; bar.max = res.total; bar.value = 0;
    const tick = async () => {
      const s = await api(`api/novelty/${res.key}`);
      bar.value = s.done; $("novelty-count").textContent = `${s.done} / ${s.total} files`;
      if (s.error) { showErrors($("novelty-errors"), [s.error]); return; }
      if (!s.finished) { setTimeout(tick, 400); return; }
      $("novelty-count").textContent = `${s.total} files in ${s.seconds} s`;
      $("novelty-result").innerHTML = s.html; sortable($("novelty-result"));
      $("novelty-csv").href = `api/novelty/${res.key}.csv`; $("novelty-json").href = `api/novelty/${res.key}.json`;
      $("novelty-downloads").hidden = false;
    };
    tick();
  });

  /* -- map --------------------------------------------------------------------------------------------- */
  let map = null;
  function colour(t) { // viridis-like ramp, t in [0, 1]
    const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
    const x = Math.max(0, Math.min(1, t)) * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
    const c = stops[i].map((v, j) => Math.round(v + (stops[i + 1][j] - v) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  }
  async function drawMap() {
    const keys = state.queries.map((q) => q.key).join(",");
    $("map-note").textContent = "computing… (the first map of an index takes about a minute, then it is cached)";
    const m = await api(`api/map?prop=${$("map-prop").value}&keys=${keys}`);
    if (m.error) { $("map-note").textContent = m.error; return; }
    const cv = $("map"), ctx = cv.getContext("2d"), pad = 20;
    const xs = m.x.concat(m.queries.map((q) => q.x)), ys = m.y.concat(m.queries.map((q) => q.y));
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const px = (x) => pad + (x - x0) / (x1 - x0 || 1) * (cv.width - 2 * pad);
    const py = (y) => cv.height - pad - (y - y0) / (y1 - y0 || 1) * (cv.height - 2 * pad);
    const vals = m.values.filter((v) => v !== null).sort((a, b) => a - b);
    const lo = vals.length ? vals[Math.floor(vals.length * 0.02)] : 0, hi = vals.length ? vals[Math.floor(vals.length * 0.98)] : 1;
    ctx.clearRect(0, 0, cv.width, cv.height);
    m.x.forEach((x, i) => {
      const v = m.values[i];
      ctx.fillStyle = v === null ? "rgba(170,170,170,0.35)" : colour((v - lo) / (hi - lo || 1));
      ctx.fillRect(px(x) - 1.5, py(m.y[i]) - 1.5, 3, 3);
    });
    m.queries.forEach((q) => {
      ctx.strokeStyle = "#d00"; ctx.lineWidth = 2; ctx.beginPath(); ctx.arc(px(q.x), py(q.y), 7, 0, 2 * Math.PI); ctx.stroke();
      ctx.fillStyle = "#d00"; ctx.font = "12px sans-serif"; ctx.fillText(q.label, px(q.x) + 9, py(q.y) - 6);
    });
    map = { m, px, py };
    $("map-note").textContent = `${m.x.length.toLocaleString()} catalog materials (${m.method === "umap" ? "UMAP" : "principal components"} of their representations)` +
      (m.queries.length ? `; ${m.queries.length} queries in red` : "; search first to place queries");
    $("map-scale").innerHTML = `colour: ${escapeHtml(m.property)} from <span style="color:${colour(0)}">■</span> ${lo} to <span style="color:${colour(1)}">■</span> ${hi} (2nd–98th percentile); grey: unknown`;
    window.__mapDrawn = m.x.length;
  }
  function nearestPoint(ev) {
    if (!map) { return -1; }
    const r = $("map").getBoundingClientRect(), x = ev.clientX - r.left, y = ev.clientY - r.top;
    let best = -1, d = 36;
    map.m.x.forEach((px, i) => { const dx = map.px(px) - x, dy = map.py(map.m.y[i]) - y, dd = dx * dx + dy * dy; if (dd < d) { d = dd; best = i; } });
    return best;
  }
  $("map").addEventListener("mousemove", (ev) => {
    const i = nearestPoint(ev), tip = $("map-tip");
    if (i < 0) { tip.hidden = true; return; }
    const v = map.m.values[i];
    tip.hidden = false; tip.style.left = `${map.px(map.m.x[i]) + 8}px`; tip.style.top = `${map.py(map.m.y[i]) + 8}px`;
    tip.textContent = `${map.m.ids[i]} ${map.m.formulas[i]}${v === null ? "" : ` · ${v}`}`;
  });
  $("map").addEventListener("click", (ev) => { const i = nearestPoint(ev); if (i >= 0) { location.hash = `#material/${map.m.ids[i]}`; } });
  $("map-prop").addEventListener("change", drawMap);

  /* the form works at once: a search sent while the index opens waits for it on the server */
  const coloursReady = api("api/status").then((s) => s.colours || {});
  $("search-button").disabled = false; $("novelty-button").disabled = false;
  window.__interactive = true;
  poll().then(route);
})();
