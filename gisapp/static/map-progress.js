// The map says that it is loading (a thin bar along its top edge) while layers or tiles arrive, and says so,
// in the page's language, when a request failed instead of staying empty (issue 20).
// map.js announces its requests with a "gisapp:loading" event on the document; tile layers (the basemap,
// vector tiles) are followed through Leaflet's own "loading", "load" and "tileerror" events.
(function () {
  "use strict";
  var state = {requests: 0, tiles: {}, bar: null, banner: null, app: null};

  function t(key, fallback) {
    var text = state.app && state.app.cfg && state.app.cfg.text;
    return (text && text[key]) || fallback;
  }

  function container() {
    return state.app && state.app.map ? state.app.map.getContainer() : document.querySelector(".gisapp-map");
  }

  function ensure() {
    var box = container();
    if (!box || state.bar) { return box; }
    var bar = document.createElement("div");
    bar.className = "map-loading";
    bar.setAttribute("data-testid", "map-loading");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-label", t("loading", "Loading…"));
    bar.hidden = true;
    Object.assign(bar.style, {position: "absolute", top: "0", left: "0", right: "0", height: "3px",
                              zIndex: 1000, pointerEvents: "none", overflow: "hidden",
                              background: "rgba(13, 110, 253, 0.25)"});
    var moving = document.createElement("div");
    Object.assign(moving.style, {position: "absolute", top: "0", bottom: "0", width: "30%",
                                 background: "#0d6efd"});
    if (moving.animate) {
      moving.animate([{left: "-30%"}, {left: "100%"}], {duration: 1200, iterations: Infinity});
    }
    bar.appendChild(moving);
    var banner = document.createElement("div");
    banner.className = "map-error alert alert-danger";
    banner.setAttribute("data-testid", "map-error");
    banner.setAttribute("role", "alert");
    banner.hidden = true;
    Object.assign(banner.style, {position: "absolute", top: "10px", left: "50%", transform: "translateX(-50%)",
                                 zIndex: 1001, maxWidth: "80%", margin: "0", padding: "6px 12px"});
    var message = document.createElement("span");
    var close = document.createElement("button");
    close.type = "button";
    close.textContent = "\u00d7";
    close.setAttribute("aria-label", t("map_close", "Close"));
    close.setAttribute("title", t("map_close", "Close"));
    Object.assign(close.style, {marginLeft: "10px", border: "0", background: "none", fontSize: "1.2em",
                                lineHeight: "1", cursor: "pointer", color: "inherit"});
    close.addEventListener("click", function () { banner.hidden = true; });
    banner.appendChild(message);
    banner.appendChild(close);
    box.appendChild(bar);
    box.appendChild(banner);
    state.bar = bar;
    state.banner = banner;
    return box;
  }

  function loadingTiles() {
    return Object.keys(state.tiles).some(function (id) { return state.tiles[id]; });
  }

  function draw() {
    var box = ensure();
    if (!state.bar) { return; }
    var busy = state.requests > 0 || loadingTiles();
    state.bar.hidden = !busy;
    if (box) { box.setAttribute("data-loading", busy ? "yes" : "no"); }
  }

  function fail(text) {
    ensure();
    if (!state.banner) { return; }
    state.banner.firstChild.textContent = text;
    state.banner.hidden = false;
  }

  function followTiles(layer) {
    if (!layer || typeof layer.on !== "function" || !(window.L && layer instanceof L.GridLayer)) { return; }
    var id = L.stamp(layer);
    layer.on("loading", function () { state.tiles[id] = true; draw(); });
    layer.on("load remove", function () { state.tiles[id] = false; draw(); });
    layer.on("tileerror", function () { fail(t("tile_error", "Could not load map tiles")); });
  }

  function attach(app) {
    if (state.app === app || !app || !app.map) { return; }
    state.app = app;
    app.map.eachLayer(followTiles);
    app.map.on("layeradd", function (e) { followTiles(e.layer); });
    draw();
  }

  document.addEventListener("gisapp:loading", function (e) {
    attach(e.detail.app);
    state.requests = e.detail.pending;
    if (e.detail.error) { fail(t("load_error", "Could not load data") + ": " + e.detail.error); }
    draw();
  });
  window.addEventListener("load", function () { attach(window.gisapp); });
})();
