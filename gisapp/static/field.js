// Field work on the main map (issue 18): "Locate me", "here, today" on a long-press (or right-click), the
// inspections layer for signed-in staff, and the phone drawer holding the filters.  Loaded after map.js and
// the map's own script, so window.gisapp (the map app) exists; settings come from this tag's data attributes.
(function () {
  "use strict";
  var script = document.currentScript;
  var cfg = script ? script.dataset : {};
  var app = window.gisapp;
  var LONG_PRESS_MS = 600;

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function t(key) { return app ? app.t(key) : key; }

  function url(path, params) {
    var query = params ? params.toString() : "";
    return (cfg.root || "") + path + (query ? "?" + query : "");
  }

  // -- the phone drawer ------------------------------------------------------------------
  var toggle = document.getElementById("drawer-toggle");
  var sidebar = document.getElementById("sidebar");
  function setDrawer(open) {
    document.body.classList.toggle("drawer-open", open);
    if (toggle) { toggle.setAttribute("aria-expanded", open ? "true" : "false"); }
    if (app && app.map) { setTimeout(function () { app.map.invalidateSize(); }, 250); }
  }
  if (toggle && sidebar) {
    toggle.addEventListener("click", function () { setDrawer(!document.body.classList.contains("drawer-open")); });
    var close = document.getElementById("drawer-close");
    if (close) { close.addEventListener("click", function () { setDrawer(false); }); }
    var form = document.getElementById("filter-form");
    if (form) { form.addEventListener("submit", function () { setDrawer(false); }); }
  }

  if (!app || !app.map || app.cfg.mode !== "main") { return; }
  var map = app.map;

  // On a phone the layer switcher, the legend and the ward jump live in the drawer, not over the map.
  var phone = window.matchMedia ? window.matchMedia("(max-width: 760px)") : null;
  var moved = [];
  function placeControls() {
    var shelf = document.getElementById("drawer-layers");
    if (!shelf) { return; }
    if (phone && phone.matches && !moved.length) {
      [".leaflet-control-layers", ".map-legend", ".ward-zoom-box"].forEach(function (sel) {
        var node = map.getContainer().querySelector(sel);
        if (node) {
          moved.push([node, node.parentNode, node.nextSibling]);
          shelf.appendChild(node);
        }
      });
    } else if (!(phone && phone.matches) && moved.length) {
      moved.forEach(function (m) { m[1].insertBefore(m[0], m[2]); });
      moved = [];
    }
  }
  placeControls();
  if (phone && phone.addEventListener) { phone.addEventListener("change", placeControls); }

  function message(text) {
    var box = document.getElementById("field-message");
    if (!box) {
      box = el("div", {id: "field-message", "class": "field-message", role: "alert", "data-testid": "field-message"});
      map.getContainer().appendChild(box);
    }
    box.textContent = text;
    box.hidden = !text;
    if (text) { setTimeout(function () { box.hidden = true; }, 8000); }
  }

  // -- "here, today" -----------------------------------------------------------------------
  function day() { return new URLSearchParams(location.search).get("day") || ""; }

  function item(kind, x) {
    var code = kind === "construction" ? x.dossier_code : x.permit_no;
    var what = kind === "construction" ? (x.address || "") : (x.purpose_label || "");
    return el("li", {"data-code": code}, [
      el("a", {href: url("/permits/" + encodeURIComponent(code)), text: code}),
      " · " + x.status_label + " · " + t("until") + " " + (x.end_on || "…"),
      el("div", {"class": "muted", text: what + " (" + x.distance_m + " m)"})
    ]);
  }

  function here(latlng) {
    var params = new URLSearchParams({lon: latlng.lng.toFixed(7), lat: latlng.lat.toFixed(7)});
    if (day()) { params.set("day", day()); }
    if (app.cfg.lang) { params.set("lang", app.cfg.lang); }
    return app.fetchJSON(url("/data/here", params)).then(function (body) {
      var parts = [el("div", {"class": "popup-title", text: t("here_title") + " · " + body.day})];
      [["construction", "here_works"], ["sidewalk", "here_sidewalk"]].forEach(function (pair) {
        var items = body[pair[0]];
        if (!items.length) { return; }
        parts.push(el("div", {"class": "legend-title", text: t(pair[1])}));
        parts.push(el("ul", {"class": "here-list", "data-testid": "here-" + pair[0]},
                      items.map(function (x) { return item(pair[0], x); })));
      });
      if (!body.construction.length && !body.sidewalk.length) {
        parts.push(el("p", {"class": "here-none", "data-testid": "here-none", text: t("here_none")}));
      }
      if (cfg.canRecord === "1") {
        var spot = new URLSearchParams({lon: params.get("lon"), lat: params.get("lat")});
        var first = body.construction[0] ? body.construction[0].dossier_code
          : (body.sidewalk[0] ? body.sidewalk[0].permit_no : "");
        if (first) {
          var withTarget = new URLSearchParams(spot);
          withTarget.set("target", first);
          parts.push(el("a", {"class": "btn-touch", href: url("/inspections/new", withTarget),
                              text: t("record_inspection")}));
        }
        parts.push(el("a", {"class": "btn-touch", "data-testid": "record-unpermitted",
                            href: url("/inspections/new", spot), text: t("record_unpermitted")}));
      }
      var box = el("div", {"class": "popup here", "data-testid": "here"}, parts);
      L.popup({maxWidth: 300}).setLatLng(latlng).setContent(box).openOn(map);
      return body;
    });
  }

  map.on("contextmenu", function (e) { here(e.latlng); });
  // A long press on a touch screen (browsers do not all turn it into a contextmenu event)
  var timer = null;
  var container = map.getContainer();
  container.addEventListener("touchstart", function (e) {
    if (e.touches.length !== 1) { clearTimeout(timer); return; }
    var touch = e.touches[0];
    timer = setTimeout(function () { here(map.mouseEventToLatLng(touch)); }, LONG_PRESS_MS);
  }, {passive: true});
  ["touchend", "touchmove", "touchcancel"].forEach(function (name) {
    container.addEventListener(name, function () { clearTimeout(timer); }, {passive: true});
  });

  // -- Locate me -----------------------------------------------------------------------------
  var me = null;
  function locate() {
    if (!window.isSecureContext || !navigator.geolocation) {
      message(t("geo_denied"));
      return;
    }
    navigator.geolocation.getCurrentPosition(function (pos) {
      var latlng = L.latLng(pos.coords.latitude, pos.coords.longitude);
      if (me) { map.removeLayer(me); }
      me = L.circleMarker(latlng, {radius: 8, color: "#fff", weight: 3, fillColor: "#1565c0", fillOpacity: 1})
        .addTo(map);
      map.setView(latlng, Math.max(map.getZoom(), 19));
      here(latlng);
    }, function (err) {
      message(err.code === 1 ? t("geo_denied") : t("geo_unavailable"));
    }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 30000});
  }
  var Locate = L.Control.extend({
    options: {position: "topleft"},
    onAdd: function () {
      var button = el("button", {type: "button", "class": "locate-me", title: t("locate_me"),
                                 "aria-label": t("locate_me"), "data-testid": "locate-me"}, ["◎"]);
      L.DomEvent.disableClickPropagation(button);
      button.addEventListener("click", locate);
      return button;
    }
  });
  new Locate().addTo(map);

  // -- the inspections layer (signed-in staff) -------------------------------------------------------
  if (cfg.signedIn === "1") {
    var colors = {PASSED: "#2e7d32", FAILED: "#c62828", UNABLE: "#757575"};
    var layer = L.geoJSON(null, {
      pointToLayer: function (f, latlng) {
        return L.circleMarker(latlng, {radius: 7, color: "#fff", weight: 2, fillOpacity: 0.95,
                                       fillColor: colors[f.properties.outcome] || "#555"});
      },
      style: function () { return {color: "#b71c1c", weight: 2, dashArray: "4 3", fillOpacity: 0.25}; },
      onEachFeature: function (f, lyr) {
        var p = f.properties;
        lyr.bindPopup(el("div", {"class": "popup"}, [
          el("div", {"class": "popup-title"}, [el("a", {href: url("/inspections/" + encodeURIComponent(p.inspection_id)),
                                                        text: p.inspection_id})]),
          el("div", {text: p.day + " · " + p.type_label + " · " + p.outcome_label}),
          el("div", {"class": "muted", text: (p.unpermitted ? t("unpermitted") : (p.target || "")) +
                                             (p.photos ? " · " + p.photos + " " + t("photos") : "")})
        ]));
      }
    }).addTo(map);
    app.fetchJSON(url("/inspections.geojson")).then(function (fc) {
      layer.addData(fc);
      map.getContainer().setAttribute("data-inspections", String(fc.features.length));
    }, function () { /* the status line says so */ });
  }

  window.gisappField = {here: function (lat, lon) { return here(L.latLng(lat, lon)); }, locate: locate};
}());
