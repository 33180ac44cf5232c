/* gisapp map client.
 *
 * folium renders the map, its empty layer groups, the controls and a call
 * GisappMap.init(map, config).  This file fills the groups from the app's
 * /data endpoints for the current filter and viewport, styles features by
 * the domain colours in `config`, and builds tooltips and popups with DOM
 * nodes and textContent only: data values never become HTML.
 */
(function () {
  "use strict";

  var FILTER_PARAMS = ["ward", "status", "procedure", "channel", "from", "to", "day", "q"];
  // the parameters that also filter sidewalk permits and findings (gisapp.web.maps.SIDE_PARAMS)
  var SIDE_PARAMS = ["ward", "from", "to", "day", "as_of"];
  var DAY_MS = 86400000;
  var MULTI = ["ward", "status", "procedure", "channel"];

  /** Escape text for the few Leaflet APIs that only take an HTML string. */
  function esc(value) {
    return String(value == null ? "" : value).replace(/[&<>"']/g, function (c) {
      return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c];
    });
  }

  /** A DOM element with attributes and children (strings become text nodes). */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; } else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (child) {
      if (child == null) { return; }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function debounce(fn, ms) {
    var timer = null;
    return function () {
      var args = arguments;
      clearTimeout(timer);
      timer = setTimeout(function () { fn.apply(null, args); }, ms);
    };
  }

  function App(map, cfg) {
    this.map = map;
    this.cfg = cfg;
    this.root = cfg.root || "";
    this.groups = {};
    this.state = {seq: {}, complete: {}, drawn: {}, mode: {}, paintedAt: {}, inflight: {}, stale: {}, preloaded: {},
                  pending: 0, errors: 0, wardBounds: {}, params: new URLSearchParams(cfg.params || {})};
    var groups = this.groups;
    Object.keys(cfg.layers || {}).forEach(function (key) { groups[key] = window[cfg.layers[key]]; });
  }

  App.prototype.t = function (key) { return (this.cfg.text || {})[key] || key; };

  App.prototype.label = function (set, code) {
    var labels = this.cfg.labels[set] || {};
    return code == null ? "—" : (labels[code] || String(code));
  };

  App.prototype.fieldLabel = function (name) { return this.cfg.fields[name] || name; };

  App.prototype.format = function (name, value) {
    if (value == null || value === "") { return "—"; }
    var codeSet = {status: "status", procedure: "procedure", work_category: "work_category", channel: "channel",
                   purpose: "purpose", kind: "kind", timeliness: "timeliness", street_class: "street_class"}[name];
    if (codeSet) { return this.label(codeSet, value); }
    if (/_on$|^overlap_(start|end)$/.test(name) && /^\d{4}-\d{2}-\d{2}$/.test(value) && this.cfg.lang === "vi") {
      var p = value.split("-");
      return p[2] + "/" + p[1] + "/" + p[0];
    }
    if (typeof value === "number") {
      return this.cfg.lang === "vi" ? String(value).replace(".", ",") : String(value);
    }
    return String(value);
  };

  /** A two-column table of fields (label, formatted value); the values of `linked` fields link to their page. */
  App.prototype.fieldTable = function (names, values, linked) {
    var self = this;
    var rows = names.map(function (name) {
      var value = values[name];
      var cell = linked && linked.indexOf(name) >= 0 && value
        ? el("td", {}, [el("a", {href: self.pageUrl(value), "class": "page-link", text: String(value)})])
        : el("td", {text: self.format(name, value)});
      return el("tr", {}, [el("th", {text: self.fieldLabel(name)}), cell]);
    });
    return el("table", {"class": "popup-fields"}, [el("tbody", {}, rows)]);
  };

  /** The page of a dossier (XD-…) or a sidewalk permit (VH-…). */
  App.prototype.pageUrl = function (code) { return this.url("/permits/" + encodeURIComponent(code)); };

  App.prototype.url = function (path, params) {
    var query = params ? params.toString() : "";
    return this.root + path + (query ? "?" + query : "");
  };

  // "gisapp:loading" on the document at each start and end of a request (map-progress.js draws it)
  App.prototype.signal = function (error) {
    document.dispatchEvent(new CustomEvent("gisapp:loading",
      {detail: {pending: this.state.pending, error: error || null, app: this}}));
  };

  App.prototype.fetchJSON = function (url) {
    var self = this;
    self.state.pending += 1;
    self.signal();
    // no custom headers: a <link rel="preload" as="fetch"> of the same URL must match this request
    return fetch(url, {credentials: "same-origin"}).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) { throw new Error((body && body.description) || ("HTTP " + r.status)); }
        return body;
      });
    }).then(function (body) {
      self.state.pending -= 1;
      self.signal();
      return body;
    }, function (err) {
      self.state.pending -= 1;
      self.state.errors += 1;
      self.signal(err.message || String(err));
      self.status(self.t("load_error") + ": " + err.message);
      if (window.console) { console.warn("gisapp:", err.message); }
      throw err;
    });
  };

  App.prototype.status = function (text) {
    var node = document.getElementById("map-status");
    if (node) { node.textContent = text || ""; }
  };

  App.prototype.bboxParam = function () {
    var b = this.map.getBounds().pad(0.25);
    var clamp = function (v, lo, hi) { return Math.min(hi, Math.max(lo, v)); };
    return [clamp(b.getWest(), -180, 180), clamp(b.getSouth(), -90, 90), clamp(b.getEast(), -180, 180),
            clamp(b.getNorth(), -90, 90)].map(function (v) { return v.toFixed(6); }).join(",");
  };

  // -- wards ------------------------------------------------------------------------

  App.prototype.loadWards = function (key, year, style) {
    var self = this;
    var group = this.groups[key];
    if (!group || group._gisappLoaded) { return Promise.resolve(); }
    group._gisappLoaded = true;
    return this.fetchJSON(this.url("/data/wards.geojson", new URLSearchParams({set: year}))).then(function (fc) {
      var layer = L.geoJSON(fc, {style: function () { return style; }, interactive: false});
      group.addLayer(layer);
      fc.features.forEach(function (f) {
        var p = f.properties;
        if (year === "2022" || key !== "wards2022") {
          var bounds = L.geoJSON(f).getBounds();
          if (key === "wards2022") { self.state.wardBounds[p.ward_code] = bounds; }
        }
        if (p.label_lat != null) {
          var icon = L.divIcon({className: "ward-label ward-label-" + year, html: el("span", {text: p.name}),
                                iconSize: null});
          group.addLayer(L.marker([p.label_lat, p.label_lon], {icon: icon, interactive: false, keyboard: false}));
        }
      });
    });
  };

  App.prototype.addWardControl = function () {
    var self = this;
    var Control = L.Control.extend({
      options: {position: "topleft"},
      onAdd: function () {
        var select = el("select", {"class": "ward-zoom", "aria-label": self.t("zoom_to_ward"),
                                   "data-testid": "zoom-to-ward"},
                        [el("option", {value: "", text: self.t("zoom_to_ward")})].concat(
                          (self.cfg.wards || []).map(function (w) {
                            return el("option", {value: w.code, text: w.code + " — " + w.name});
                          })));
        var box = el("div", {"class": "leaflet-bar ward-zoom-box"}, [select]);
        L.DomEvent.disableClickPropagation(box);
        select.addEventListener("change", function () {
          var b = self.state.wardBounds[select.value];
          if (b) { self.map.fitBounds(b); }
        });
        return box;
      }
    });
    new Control().addTo(this.map);
  };

  // -- feature layers -------------------------------------------------------------------

  App.prototype.permitStyle = function (feature) {
    var p = feature.properties;
    var fill = this.cfg.colors.status[p.status] || "#777777";
    var overdue = p.timeliness === "OVERDUE";
    var focus = this.cfg.focus && p.dossier_code === this.cfg.focus;
    return {color: focus ? "#000000" : (overdue ? this.cfg.colors.timeliness.OVERDUE : "#263238"),
            weight: focus ? 4 : (overdue ? 3 : 0.8), dashArray: overdue && !focus ? "4 3" : null,
            fillColor: fill, fillOpacity: focus ? 0.95 : 0.75, opacity: 1};
  };

  App.prototype.permitTooltip = function (layer) {
    var p = layer.feature.properties;
    return el("div", {"class": "tip"}, [el("strong", {text: p.dossier_code}), el("br"), p.site_address || ""]);
  };

  App.prototype.permitPopup = function (layer, group) {
    // Leaflet calls this again on popup.update(); the node is built (and fetched) once per layer.
    if (layer._gisappPopup) { return layer._gisappPopup; }
    var self = this;
    var p = layer.feature.properties;
    var body = el("div", {"class": "popup-body", text: this.t("loading")});
    var link = el("a", {href: this.url("/permits/" + encodeURIComponent(p.dossier_code)), "class": "popup-link",
                        text: this.t("open_permit")});
    var node = el("div", {"class": "popup", "data-testid": "permit-popup"}, [
      el("div", {"class": "popup-title", text: p.dossier_code}),
      el("div", {"class": "popup-address", text: p.site_address || ""}),
      el("div", {"class": "popup-status"}, [
        el("span", {"class": "dot", style: "background:" + (this.cfg.colors.status[p.status] || "#777")}),
        this.label("status", p.status)]),
      body, link]);
    layer._gisappPopup = node;
    this.fetchJSON(this.url("/data/construction_permits/" + encodeURIComponent(p.dossier_code) + ".json"))
      .then(function (d) {
        body.textContent = "";
        var names = Object.keys(d.fields).filter(function (k) { return k !== "status"; });
        var table = self.fieldTable(names, d.fields);
        var due = table.querySelector("tbody");
        due.appendChild(el("tr", {}, [el("th", {text: self.t("timeliness")}),
                                      el("td", {"class": "timeliness-" + (d.timeliness || "none"),
                                                text: self.label("timeliness", d.timeliness)})]));
        due.appendChild(el("tr", {}, [el("th", {text: self.t("linked_sidewalk")}),
                                      el("td", {text: d.linked.length ? d.linked.join(", ") : self.t("none")})]));
        due.appendChild(el("tr", {}, [el("th", {text: self.t("nearby_sidewalk")}),
                                      el("td", {text: d.nearby.length ? d.nearby.join(", ") : self.t("none")})]));
        body.appendChild(table);
        if (group && group.isPopupOpen() && group.getPopup()._source === layer) { group.getPopup().update(); }
      }, function () { body.textContent = self.t("load_error"); layer._gisappPopup = null; });
    return node;
  };

  App.prototype.sidewalkStyle = function (feature) {
    var p = feature.properties;
    var c = this.cfg.colors.purpose[p.purpose] || "#f4511e";
    return {color: c, weight: 1.5, fillColor: c, fillOpacity: 0.55, opacity: 1};
  };

  App.prototype.walkStyle = function (feature) {
    var c = this.cfg.colors.street_class[feature.properties.street_class] || "#607d8b";
    return {color: c, weight: 1, fillColor: "#cfd8dc", fillOpacity: 0.35, opacity: 0.8};
  };

  App.prototype.findingStyle = function (feature) {
    var c = this.cfg.colors.kind[feature.properties.kind] || "#d50000";
    return {color: c, weight: 2.5, dashArray: "2 3", fillColor: c, fillOpacity: 0.25, opacity: 1};
  };

  App.prototype.simplePopup = function (names, titleKey, spec) {
    var self = this;
    return function (layer) {
      var p = layer.feature.properties;
      var linked = spec.linked ? spec.linked(p) : [];
      var link = spec.pageLink ? el("a", {href: self.pageUrl(p[titleKey]), "class": "popup-link",
                                          text: self.t(spec.pageLink)}) : null;
      return el("div", {"class": "popup", "data-testid": spec.layer + "-popup"}, [
        el("div", {"class": "popup-title", text: p[titleKey]}), self.fieldTable(names, p, linked), link]);
    };
  };

  var LAYER_SPECS = {
    permits: {
      layer: "construction_permits", filtered: true,
      style: "permitStyle", tooltip: "permitTooltip", popup: "permitPopup"
    },
    sidewalk: {
      layer: "sidewalk_permits", filtered: "side", style: "sidewalkStyle",
      tooltip: function (layer) {
        var p = layer.feature.properties;
        return el("div", {"class": "tip"}, [el("strong", {text: p.permit_no}), el("br"), p.address || ""]);
      },
      popupFields: ["purpose", "status", "start_on", "end_on", "sidewalk_width_m", "used_width_m", "address",
                    "construction_dossier_code"],
      title: "permit_no", pageLink: "open_sidewalk",
      linked: function () { return ["construction_dossier_code"]; }
    },
    sidewalks: {
      layer: "sidewalks", style: "walkStyle",
      tooltip: function (layer) {
        var p = layer.feature.properties;
        return el("div", {"class": "tip"}, [el("strong", {text: p.sidewalk_id}), el("br"), p.street || ""]);
      },
      popupFields: ["street", "width_m", "street_class", "ward_code"], title: "sidewalk_id"
    },
    findings: {
      layer: "findings", filtered: "side", style: "findingStyle",
      tooltip: function (layer) {
        var p = layer.feature.properties;
        return el("div", {"class": "tip"}, [el("strong", {text: p.finding_id}), el("br"),
                                            (p.a_id || "") + (p.b_id ? " ↔ " + p.b_id : "")]);
      },
      popupFields: ["kind", "a_id", "b_id", "overlap_start", "overlap_end", "overlap_area_m2", "distance_m"],
      title: "finding_id",
      // the dossiers and sidewalk permits it names have a page; a ward mismatch's b_id is a ward's key
      linked: function (p) { return p.kind === "WARD_MISMATCH" ? ["a_id"] : ["a_id", "b_id"]; }
    }
  };

  App.prototype.layerParams = function (spec) {
    var params = new URLSearchParams();
    var current = this.state.params;
    if (spec.filtered === true) {
      current.forEach(function (v, k) { params.append(k, v); });
    } else if (spec.filtered === "side") {
      SIDE_PARAMS.forEach(function (k) { if (current.get(k)) { params.set(k, current.get(k)); } });
    }
    params.set("bbox", this.bboxParam());
    params.set("zoom", String(Math.round(this.map.getZoom())));
    return params;
  };

  App.prototype.loadLayer = function (key) {
    var self = this;
    var spec = LAYER_SPECS[key];
    var group = this.groups[key];
    if (!group) { return Promise.resolve(); }
    if (key === "findings" && !this.cfg.hasFindings) { return Promise.resolve(); }
    var seq = (this.state.seq[key] || 0) + 1;
    this.state.seq[key] = seq;
    this.state.inflight[key] = true;
    // the first request of a small layer is the one the page preloaded (the whole filtered layer)
    var preload = (this.cfg.preload || {})[key];
    var url = preload && !this.state.preloaded[key] ? preload
      : this.url("/data/" + spec.layer + ".geojson", this.layerParams(spec));
    this.state.preloaded[key] = true;
    return this.fetchJSON(url).then(function (fc) {
      if (seq !== self.state.seq[key]) { return; }
      self.state.inflight[key] = false;
      group.clearLayers();
      self.state.complete[key] = !!fc.complete;
      self.state.mode[key] = fc.mode;
      if (fc.mode === "aggregate") {
        self.drawAggregates(group, fc);
        self.state.drawn[key] = 0;
        if (key === "permits") { self.status(self.t("aggregated")); }
      } else {
        var layer = L.geoJSON(fc, {style: self[spec.style].bind(self)});
        // one tooltip and one popup for the whole layer: Leaflet hands the feature under the pointer
        var tooltip = typeof spec.tooltip === "function" ? spec.tooltip : self[spec.tooltip].bind(self);
        var popup = spec.popup ? function (child) { return self[spec.popup](child, layer); }
          : self.simplePopup(spec.popupFields, spec.title, spec);
        layer.bindTooltip(tooltip, {sticky: true});
        layer.bindPopup(popup, {maxWidth: 360});
        group.addLayer(layer);
        self.state.drawn[key] = fc.features.length;
        self.state.bounds = self.state.bounds || {};
        self.state.bounds[key] = fc.features.length ? layer.getBounds() : null;
        if (key === "permits") {
          self.status("");
          if (self.cfg.focus) { self.openFocus(layer); }
        }
      }
      self.map.getContainer().setAttribute("data-" + key, fc.mode + ":" + (self.state.drawn[key] || 0));
      // when the canvas has painted this response (Leaflet redraws on the next animation frame)
      requestAnimationFrame(function () {
        if (seq === self.state.seq[key]) { self.state.paintedAt[key] = performance.now(); }
      });
      if (self.state.stale[key]) {
        self.state.stale[key] = false;
        if (!fc.complete) { self.loadLayer(key); }
      }
    }, function () { if (seq === self.state.seq[key]) { self.state.inflight[key] = false; } });
  };

  App.prototype.openFocus = function (layer) {
    var self = this;
    layer.eachLayer(function (lyr) {
      if (lyr.feature.properties.dossier_code === self.cfg.focus) { lyr.bringToFront(); }
    });
  };

  App.prototype.drawAggregates = function (group, fc) {
    var self = this;
    fc.features.forEach(function (f) {
      var p = f.properties;
      var ll = [f.geometry.coordinates[1], f.geometry.coordinates[0]];
      var marker = L.circleMarker(ll, {radius: 12 + Math.sqrt(p.count) / 4, color: "#0d47a1", weight: 2,
                                       fillColor: "#1e88e5", fillOpacity: 0.6});
      marker.bindTooltip(el("span", {text: String(p.count)}), {permanent: true, direction: "center",
                                                              className: "agg-label"});
      marker.bindPopup(el("div", {"class": "popup"}, [el("div", {"class": "popup-title", text: p.name}),
                                                      String(p.count) + " — " + self.t("zoom_in")]));
      marker.on("dblclick", function () { self.map.setView(ll, Math.max(self.map.getZoom() + 2, 16)); });
      group.addLayer(marker);
    });
  };

  App.prototype.reloadAll = function (force) {
    var self = this;
    var jobs = ["sidewalks", "permits", "sidewalk", "findings"].filter(function (k) {
      if (!self.groups[k] || (!force && self.state.complete[k])) { return false; }
      if (!force && self.state.inflight[k]) { self.state.stale[k] = true; return false; }
      return true;
    }).map(function (k) { return self.loadLayer(k); });
    return Promise.all(jobs);
  };

  App.prototype.zoomToResults = function () {
    var b = this.state.bounds && this.state.bounds.permits;
    if (this.state.mode.permits === "features" && b && b.isValid()) {
      this.map.fitBounds(b, {maxZoom: 18, padding: [20, 20]});
      return;
    }
    var wards = this.state.params.get("ward");
    var codes = wards ? wards.split(",") : Object.keys(this.state.wardBounds);
    var all = null;
    var self = this;
    codes.forEach(function (c) {
      var wb = self.state.wardBounds[c];
      if (wb) { all = all ? all.extend(wb) : L.latLngBounds(wb.getSouthWest(), wb.getNorthEast()); }
    });
    if (all) { this.map.fitBounds(all); }
  };

  // -- filter form, count, permalink --------------------------------------------------

  App.prototype.formParams = function (form) {
    var params = new URLSearchParams();
    FILTER_PARAMS.forEach(function (name) {
      var field = form.elements[name];
      if (!field) { return; }
      if (MULTI.indexOf(name) >= 0 && field.options) {
        var values = Array.prototype.filter.call(field.options, function (o) { return o.selected && o.value; })
          .map(function (o) { return o.value; });
        if (values.length) { params.set(name, values.join(",")); }
      } else if (field.value && field.value.trim()) {
        params.set(name, field.value.trim());
      }
    });
    return params;
  };

  App.prototype.setForm = function (form, params) {
    FILTER_PARAMS.forEach(function (name) {
      var field = form.elements[name];
      if (!field) { return; }
      var value = params.get(name) || "";
      if (MULTI.indexOf(name) >= 0 && field.options) {
        var wanted = value ? value.split(",") : [];
        Array.prototype.forEach.call(field.options, function (o) { o.selected = wanted.indexOf(o.value) >= 0; });
      } else {
        field.value = value;
      }
    });
  };

  App.prototype.updateLinks = function () {
    var q = this.state.params;
    var exp = document.getElementById("export-link");
    if (exp) { exp.setAttribute("href", this.url("/export/construction_permits.geojson", q)); }
    var dash = document.getElementById("dashboard-link");
    if (dash) { dash.setAttribute("href", this.url("/wards", q)); }
  };

  // The printed map (/reports/map.pdf): the filter and the box now in view.
  App.prototype.printUrl = function () {
    var q = new URLSearchParams(this.state.params);
    var b = this.map.getBounds();
    q.set("bbox", [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map(function (v) { return v.toFixed(6); }).join(","));
    return this.url("/reports/map.pdf", q);
  };

  App.prototype.updateCount = function () {
    var node = document.querySelector('[data-testid="permit-count"]');
    if (!node) { return Promise.resolve(); }
    node.setAttribute("aria-busy", "true");
    var seq = (this.state.countSeq || 0) + 1;
    this.state.countSeq = seq;
    var self = this;
    return this.fetchJSON(this.url("/data/count", this.state.params)).then(function (body) {
      if (seq !== self.state.countSeq) { return; }
      node.textContent = String(body.count);
      node.removeAttribute("aria-busy");
      self.daySummary(body);
    }, function () {});
  };

  /** Show the filter `params`: push them to the history (`push` true), replace the URL ("replace": the day
   * slider) or neither; the view zooms to the results unless `keepView`. */
  App.prototype.applyFilter = function (params, push, keepView) {
    var self = this;
    this.state.params = params;
    if (push) {
      var query = params.toString();
      var url = location.pathname + (query ? "?" + query : "") + location.hash;
      if (push === "replace") { history.replaceState({gisapp: query}, "", url); }
      else { history.pushState({gisapp: query}, "", url); }
    }
    this.syncSlider(params.get("day"));
    this.updateLinks();
    this.state.complete = {};
    var warnings = document.querySelector('[data-testid="filter-warnings"]');
    if (warnings && push) { warnings.parentNode.removeChild(warnings); }
    return Promise.all([this.updateCount(), this.reloadAll(true)]).then(function () {
      if (params.toString() && !keepView) { self.zoomToResults(); }
    });
  };

  // -- day slider: what is active on one day, or played through a range ----------------

  function dayNumber(iso) {
    var m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(iso || "");
    return m ? Math.round(Date.UTC(+m[1], +m[2] - 1, +m[3]) / DAY_MS) : null;
  }

  function isoDay(number) { return new Date(number * DAY_MS).toISOString().slice(0, 10); }

  App.prototype.daySlider = function (form) {
    var box = document.querySelector('[data-testid="day-slider"]');
    var first = box && dayNumber(box.getAttribute("data-min"));
    var last = box && dayNumber(box.getAttribute("data-max"));
    if (!box || first == null || last == null || !form) { return; }
    var self = this;
    var s = this.slider = {box: box, first: first, last: last, range: box.querySelector('input[type="range"]'),
                           input: form.elements.day, play: box.querySelector('[data-action="play"]'),
                           step: box.querySelector("select"), playing: false, timer: null};
    s.range.addEventListener("input", debounce(function () {
      self.setDay(isoDay(s.first + parseInt(s.range.value, 10)));
    }, 150));
    s.input.addEventListener("change", function () { self.stopPlay(); self.setDay(s.input.value || null); });
    box.addEventListener("click", function (e) {
      var action = e.target.closest && e.target.closest("[data-action]");
      if (!action) { return; }
      var what = action.getAttribute("data-action");
      if (what === "play") { self.togglePlay(); return; }
      self.stopPlay();
      if (what === "clear") { self.setDay(null); }
      else { self.stepDay(what === "back" ? -1 : 1); }
    });
    this.syncSlider(this.state.params.get("day"));
    if (this.state.params.get("day")) { this.updateCount(); }
  };

  /** The slider and the date field showing `day` (ISO text, or none: every day). */
  App.prototype.syncSlider = function (day) {
    var s = this.slider;
    if (!s) { return; }
    var n = dayNumber(day);
    s.range.value = String(n == null ? 0 : Math.min(s.last, Math.max(s.first, n)) - s.first);
    s.input.value = day || "";
    s.box.classList.toggle("day-set", n != null);
    if (n == null) { this.daySummary(null); }
  };

  App.prototype.daySummary = function (body) {
    var node = document.querySelector('[data-testid="day-summary"]');
    if (!node) { return; }
    if (!body || !this.state.params.get("day") || body.sidewalk_permits == null) { node.textContent = ""; return; }
    node.textContent = this.t("day_summary").replace("{sidewalk}", String(body.sidewalk_permits))
      .replace("{findings}", String(body.findings));
  };

  /** Show what is active on `day` (ISO text; none: every day), in the URL without a new history entry. */
  App.prototype.setDay = function (day) {
    var params = new URLSearchParams(this.state.params.toString());
    if (day) { params.set("day", day); } else { params["delete"]("day"); }
    return this.applyFilter(params, "replace", true);
  };

  App.prototype.stepDay = function (direction) {
    var s = this.slider;
    var current = dayNumber(this.state.params.get("day"));
    var size = parseInt(s.step.value, 10) || 1;
    var next = current == null ? (direction > 0 ? s.first : s.last) : current + direction * size;
    next = Math.min(s.last, Math.max(s.first, next));
    return this.setDay(isoDay(next));
  };

  App.prototype.stopPlay = function () {
    var s = this.slider;
    if (!s || !s.playing) { return; }
    s.playing = false;
    clearTimeout(s.timer);
    s.play.setAttribute("aria-pressed", "false");
    s.play.textContent = "\u25B6 " + s.play.getAttribute("data-play");
  };

  /** Play: one step, then the next once the map has loaded it and 0.7 s have passed; stops at the end. */
  App.prototype.togglePlay = function () {
    var self = this;
    var s = this.slider;
    if (s.playing) { this.stopPlay(); return; }
    s.playing = true;
    s.play.setAttribute("aria-pressed", "true");
    s.play.textContent = "\u23F8 " + s.play.getAttribute("data-pause");
    var current = dayNumber(this.state.params.get("day"));
    var tick = function () {
      if (!s.playing) { return; }
      var day = dayNumber(self.state.params.get("day"));
      var size = parseInt(s.step.value, 10) || 1;
      if (day != null && day + size > s.last) { self.stopPlay(); return; }
      self.setDay(isoDay(day == null ? s.first : day + size)).then(function () {
        if (s.playing) { s.timer = setTimeout(tick, 700); }
      });
    };
    if (current != null && current >= s.last) { this.setDay(isoDay(s.first)).then(function () {
      s.timer = setTimeout(tick, 700);
    }); } else { tick(); }
  };

  App.prototype.fitInitial = function () {
    if (this.cfg.bounds) { this.map.fitBounds(this.cfg.bounds, {animate: false}); }
  };

  App.prototype.viewFromHash = function () {
    var m = /^#(\d{1,2})\/(-?\d+(?:\.\d+)?)\/(-?\d+(?:\.\d+)?)$/.exec(location.hash);
    if (!m) { return false; }
    this.map.setView([parseFloat(m[2]), parseFloat(m[3])], parseInt(m[1], 10), {animate: false});
    return true;
  };

  App.prototype.writeHash = function () {
    var c = this.map.getCenter();
    var hash = "#" + this.map.getZoom() + "/" + c.lat.toFixed(5) + "/" + c.lng.toFixed(5);
    history.replaceState(history.state, "", location.pathname + location.search + hash);
  };

  App.prototype.main = function () {
    var self = this;
    var map = this.map;
    this.addWardControl();
    var fromHash = this.viewFromHash();
    if (!fromHash) { this.fitInitial(); }
    var wardsReady = this.loadWards("wards2022", "2022", {color: "#37474f", weight: 2, fill: false});
    map.on("overlayadd", function (e) {
      if (e.layer === self.groups.wards2025) {
        self.loadWards("wards2025", "2025", {color: "#6a1b9a", weight: 2.5, dashArray: "8 6", fill: false});
      }
    });
    var form = document.getElementById("filter-form");
    if (form) {
      form.addEventListener("submit", function (e) {
        e.preventDefault();
        self.stopPlay();
        self.applyFilter(self.formParams(form), true);
      });
      this.daySlider(form);
    }
    window.addEventListener("popstate", function () {
      var params = new URLSearchParams(location.search);
      var clean = new URLSearchParams();
      FILTER_PARAMS.forEach(function (k) { if (params.get(k)) { clean.set(k, params.getAll(k).join(",")); } });
      if (form) { self.setForm(form, clean); }
      self.stopPlay();
      self.applyFilter(clean, false);
    });
    var zoomBtn = document.getElementById("zoom-results");
    if (zoomBtn) { zoomBtn.addEventListener("click", function () { self.zoomToResults(); }); }
    var printLink = document.getElementById("print-link");
    if (printLink) { printLink.addEventListener("click", function () { printLink.href = self.printUrl(); }); }
    map.on("moveend", debounce(function () {
      self.writeHash();
      self.reloadAll(false);
    }, 150));
    var first = this.reloadAll(true);
    if (!fromHash && this.state.params.toString()) {
      Promise.all([first, wardsReady]).then(function () { self.zoomToResults(); });
    }
  };

  // -- other modes --------------------------------------------------------------------

  App.prototype.permit = function () {
    this.fitInitial();
    this.loadWards("wards2022", "2022", {color: "#37474f", weight: 2, fill: false});
    var self = this;
    this.map.on("moveend", debounce(function () { self.reloadAll(false); }, 150));
    this.reloadAll(true);
  };

  App.prototype.choropleth = function () {
    var self = this;
    var group = this.groups.choropleth;
    var values = this.cfg.values || {};
    this.fitInitial();
    return this.fetchJSON(this.url("/data/wards.geojson", new URLSearchParams({set: this.cfg.wardSet})))
      .then(function (fc) {
        var layer = L.geoJSON(fc, {
          style: function (f) {
            return {color: "#263238", weight: 1.5, fillColor: self.cfg.fill[f.properties.ward_code] || "#e0e0e0",
                    fillOpacity: 0.85};
          },
          onEachFeature: function (f, lyr) {
            var code = f.properties.ward_code;
            lyr.bindTooltip(el("div", {"class": "tip"}, [el("strong", {text: f.properties.name}), el("br"),
                                                       String(values[code] || 0) + " " + self.t("received")]),
                            {sticky: true});
            lyr.on("click", function () {
              window.location.href = self.url("/", new URLSearchParams({ward: code}));
            });
          }
        });
        group.addLayer(layer);
        if (fc.features.length) { self.map.fitBounds(layer.getBounds(), {padding: [8, 8], animate: false}); }
        fc.features.forEach(function (f) {
          var p = f.properties;
          if (p.label_lat == null) { return; }
          group.addLayer(L.marker([p.label_lat, p.label_lon], {
            interactive: false, keyboard: false,
            icon: L.divIcon({className: "ward-label", iconSize: null,
                             html: el("span", {text: p.name + ": " + (values[p.ward_code] || 0)})})
          }));
        });
        self.map.getContainer().setAttribute("data-choropleth", String(fc.features.length));
      });
  };

  window.GisappMap = {
    esc: esc,
    init: function (map, cfg) {
      var app = new App(map, cfg);
      map.attributionControl.addAttribution(esc(app.t("attribution")));
      map.getContainer().classList.add("gisapp-map", "mode-" + cfg.mode);
      window.gisapp = app;
      app.idle = function () { return app.state.pending === 0; };
      if (cfg.mode === "main") { app.main(); }
      else if (cfg.mode === "permit") { app.permit(); }
      else if (cfg.mode === "choropleth") { app.choropleth(); }
      return app;
    }
  };
})();
