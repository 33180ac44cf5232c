/* gisapp: the officers' "check a sidewalk occupancy" tool on the map.
 *
 * Leaflet.draw (vendored) draws one rectangle or polygon; "Start from a
 * parcel" asks the server for the strip of sidewalk in front of a clicked
 * dossier's parcel.  "Check" runs the OGC API – Processes process
 * occupancy-check; its verdict, passage, clashes (highlighted on the map),
 * dossier, fee and due date are shown in the panel with textContent only.
 * "File" saves the occupancy as a NEW sidewalk-use permit application
 * (POST /occupancy with the page's CSRF token); after that, editing the
 * drawing or the dates and saving again changes that application
 * (POST /occupancy/<permit_no>), checked again.
 */
(function () {
  "use strict";

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

  function byId(id) { return document.getElementById(id); }

  function Tool(map, cfg) {
    this.map = map;
    this.cfg = cfg;
    this.layer = null;        // the drawn occupancy
    this.permitNo = null;     // the application once filed
    this.report = null;
    this.drawn = new L.FeatureGroup().addTo(map);
    this.clashes = L.featureGroup().addTo(map);
    this.picking = false;
  }

  Tool.prototype.t = function (key) { return (this.cfg.text || {})[key] || key; };

  Tool.prototype.localize = function () {
    if (this.cfg.lang !== "vi" || !L.drawLocal) { return; }
    var d = L.drawLocal.draw, e = L.drawLocal.edit;
    d.toolbar.buttons.polygon = "Vẽ đa giác";
    d.toolbar.buttons.rectangle = "Vẽ hình chữ nhật";
    d.toolbar.actions = {title: "Hủy vẽ", text: "Hủy"};
    d.toolbar.finish = {title: "Kết thúc vẽ", text: "Kết thúc"};
    d.toolbar.undo = {title: "Xóa điểm vừa vẽ", text: "Xóa điểm cuối"};
    d.handlers.polygon.tooltip = {start: "Bấm để bắt đầu vẽ.", cont: "Bấm để vẽ tiếp.",
                                  end: "Bấm vào điểm đầu để khép hình."};
    d.handlers.rectangle.tooltip = {start: "Bấm và kéo để vẽ hình chữ nhật."};
    d.handlers.simpleshape.tooltip = {end: "Thả chuột để kết thúc."};
    e.toolbar.buttons = {edit: "Sửa hình", editDisabled: "Không có hình để sửa", remove: "Xóa hình",
                         removeDisabled: "Không có hình để xóa"};
    e.toolbar.actions.save = {title: "Lưu thay đổi", text: "Lưu"};
    e.toolbar.actions.cancel = {title: "Hủy thay đổi", text: "Hủy"};
    e.toolbar.actions.clearAll = {title: "Xóa tất cả", text: "Xóa tất cả"};
  };

  Tool.prototype.start = function () {
    var self = this;
    this.localize();
    var shape = {color: this.cfg.colors.drawn, weight: 2, fillOpacity: 0.35};
    this.control = new L.Control.Draw({
      position: "topleft",
      draw: {polyline: false, circle: false, marker: false, circlemarker: false,
             polygon: {allowIntersection: false, showArea: true, metric: true, shapeOptions: shape},
             rectangle: {showArea: true, metric: true, shapeOptions: shape}},
      edit: {featureGroup: this.drawn, remove: true}
    });
    this.map.addControl(this.control);
    this.map.on(L.Draw.Event.CREATED, function (e) { self.setLayer(e.layer); self.check(); });
    this.map.on(L.Draw.Event.EDITED, function () { self.check(); });
    this.map.on(L.Draw.Event.DELETED, function () { self.setLayer(null); });
    byId("occ-check").addEventListener("click", function () { self.check(); });
    byId("occ-save").addEventListener("click", function () { self.save(); });
    byId("occ-clear").addEventListener("click", function () { self.setLayer(null); self.permitNo = null; self.show(null); });
    byId("occ-parcel").addEventListener("click", function () { self.pickParcel(); });
    this.map.on("popupopen", function (e) { self.parcelPicked(e); });
    this.map.getContainer().setAttribute("data-occupancy", "ready");
  };

  /** Keep one occupancy: ``layer`` (or none) replaces what was drawn before. */
  Tool.prototype.setLayer = function (layer) {
    this.drawn.clearLayers();
    this.clashes.clearLayers();
    this.layer = layer;
    if (layer) { this.drawn.addLayer(layer); }
  };

  /** Set the occupancy from a GeoJSON geometry (WGS84), e.g. the frontage of a parcel. */
  Tool.prototype.setGeometry = function (geometry) {
    var layers = L.geoJSON(geometry, {style: {color: this.cfg.colors.drawn, weight: 2, fillOpacity: 0.35}})
      .getLayers();
    this.setLayer(layers.length ? layers[0] : null);
    if (this.layer) { this.map.fitBounds(this.layer.getBounds(), {maxZoom: 19, animate: false}); }
  };

  Tool.prototype.pickParcel = function () {
    this.picking = true;
    this.message(this.t("occ_pick_parcel"), "");
  };

  Tool.prototype.parcelPicked = function (e) {
    if (!this.picking) { return; }
    var source = e.popup && e.popup._source;
    var props = source && source.feature && source.feature.properties;
    if (!props || !props.dossier_code) { return; }
    this.picking = false;
    this.map.closePopup();
    byId("occ-dossier").value = props.dossier_code;
    var self = this;
    fetch(this.cfg.frontage + encodeURIComponent(props.dossier_code), {credentials: "same-origin"})
      .then(function (r) { return r.json().then(function (body) { return {ok: r.ok, body: body}; }); })
      .then(function (res) {
        if (!res.ok) { self.message(self.t("occ_error") + ": " + res.body.description, "error"); return; }
        self.setGeometry(res.body.geometry);
        self.message("", "");
      });
  };

  Tool.prototype.message = function (text, kind) {
    var box = byId("occ-result");
    box.textContent = text;
    box.className = "occ-result" + (kind ? " occ-" + kind : "");
  };

  Tool.prototype.inputs = function () {
    if (!this.layer) { this.message(this.t("occ_draw_first"), "error"); return null; }
    var start = byId("occ-start").value, end = byId("occ-end").value;
    if (!start || !end) { this.message(this.t("occ_dates_first"), "error"); return null; }
    var inputs = {geometry: this.layer.toGeoJSON().geometry, start: start, end: end,
                  purpose: byId("occ-purpose").value};
    var dossier = byId("occ-dossier").value.trim();
    if (dossier) { inputs.construction_dossier_code = dossier; }
    return inputs;
  };

  Tool.prototype.post = function (url, body, headers) {
    return fetch(url, {method: "POST", credentials: "same-origin",
                       headers: Object.assign({"Content-Type": "application/json", "Accept": "application/json"},
                                              headers || {}),
                       body: JSON.stringify(body)})
      .then(function (r) { return r.json().then(function (doc) { return {ok: r.ok, status: r.status, doc: doc}; }); });
  };

  Tool.prototype.check = function () {
    var inputs = this.inputs();
    if (!inputs) { return Promise.resolve(); }
    var self = this;
    this.message(this.t("occ_checking"), "");
    this.map.getContainer().setAttribute("data-occupancy", "checking");
    return this.post(this.cfg.execute, {inputs: inputs}).then(function (res) {
      if (!res.ok) { self.show(null); self.message(self.t("occ_error") + ": " + res.doc.description, "error"); }
      else { self.show(res.doc); }
      self.map.getContainer().setAttribute("data-occupancy", res.ok ? "checked:" + res.doc.verdict : "error");
    });
  };

  Tool.prototype.save = function () {
    var inputs = this.inputs();
    if (!inputs) { return Promise.resolve(); }
    var self = this;
    var token = document.querySelector('meta[name="csrf-token"]');
    var body = {inputs: inputs};
    var applicant = byId("occ-applicant").value.trim(), address = byId("occ-address").value.trim();
    if (applicant) { body.applicant_name = applicant; }
    if (address) { body.address = address; }
    var url = this.permitNo ? this.cfg.save + "/" + encodeURIComponent(this.permitNo) : this.cfg.save;
    byId("occ-saved").textContent = this.t("occ_saving");
    return this.post(url, body, {"X-CSRFToken": token ? token.content : ""}).then(function (res) {
      var out = byId("occ-saved");
      out.textContent = "";
      if (!res.ok) {
        out.textContent = self.t("occ_error") + ": " + res.doc.description;
        self.map.getContainer().setAttribute("data-occupancy", "save-error");
        return;
      }
      var changed = !!self.permitNo;
      self.permitNo = res.doc.permit_no;
      self.show(res.doc.report);
      out.appendChild(document.createTextNode(self.t(changed ? "occ_changed" : "occ_saved") + " "));
      out.appendChild(el("a", {href: res.doc.url, "data-testid": "occ-permit-link", text: res.doc.permit_no}));
      byId("occ-save").textContent = self.t("occ_save_changes");
      self.map.getContainer().setAttribute("data-occupancy", "saved:" + res.doc.permit_no);
      if (window.gisapp && window.gisapp.cfg) { window.gisapp.cfg.hasFindings = true; }
      if (window.gisapp && window.gisapp.reloadAll) { window.gisapp.reloadAll(true); }
    });
  };

  Tool.prototype.row = function (label, value) {
    return el("tr", {}, [el("th", {text: label}), el("td", {}, [value])]);
  };

  /** The report beside the map; the clashing permits highlighted on it. */
  Tool.prototype.show = function (report) {
    var self = this;
    this.report = report;
    this.clashes.clearLayers();
    var box = byId("occ-result");
    box.textContent = "";
    box.className = "occ-result";
    byId("occ-file").hidden = !report;
    if (!report) { return; }
    var verdict = el("div", {"class": "occ-verdict occ-verdict-" + report.verdict, "data-testid": "occ-verdict",
                             "data-verdict": report.verdict, style: "--c:" + this.cfg.colors[report.verdict]},
                     [el("strong", {text: report.verdict}), " — " + this.t("occ_verdict_" + report.verdict)]);
    box.appendChild(verdict);
    if (report.reasons.length) {
      box.appendChild(el("ul", {"class": "occ-reasons"}, report.reasons.map(function (r) {
        return el("li", {"data-code": r.code, text: self.cfg.lang === "en" ? r.en : r.vi});
      })));
    }
    var passage = report.narrowest_passage_m == null ? "—"
      : report.narrowest_passage_m.toFixed(2) + " m" + (report.narrowest_on ? " (" + this.t("occ_on_day") + " " +
                                                        report.narrowest_on + ")" : "");
    var dossier = report.construction_dossier_code
      ? el("a", {href: this.cfg.root + "/permits/" + encodeURIComponent(report.construction_dossier_code),
                 "data-testid": "occ-dossier-link", text: report.construction_dossier_code})
      : this.t("occ_none");
    var fee = report.fee_vnd == null ? "—" : report.fee_vnd.toLocaleString(this.cfg.lang === "en" ? "en" : "vi") + " ₫";
    var table = el("table", {"class": "fields occ-table"}, [
      this.row(this.t("occ_passage"), el("span", {"data-testid": "occ-passage", text: passage})),
      this.row(this.t("occ_area"), report.area_m2.toFixed(2) + " m²"),
      this.row(this.t("occ_ward"), report.ward_code || "—"),
      this.row(this.t("occ_sidewalks"), (report.sidewalk_ids || []).join(", ") || "—"),
      this.row(this.t("occ_linked"), dossier),
      this.row(this.t("occ_fee"), el("span", {"data-testid": "occ-fee", text: fee})),
      this.row(this.t("occ_due"), el("span", {"data-testid": "occ-due", text: report.due_on || "—"}))
    ]);
    box.appendChild(table);
    if (report.fee_note) {
      box.appendChild(el("p", {"class": "small muted occ-fee-note",
                               text: this.cfg.lang === "en" ? report.fee_note.en : report.fee_note.vi}));
    }
    box.appendChild(el("h3", {text: this.t("occ_clashes")}));
    if (!report.clashes.length) {
      box.appendChild(el("p", {"class": "small", text: this.t("occ_no_clash")}));
    } else {
      box.appendChild(el("ul", {"class": "occ-clashes", "data-testid": "occ-clashes"}, report.clashes.map(function (c) {
        return el("li", {}, [el("a", {href: self.cfg.root + "/permits/" + encodeURIComponent(c.permit_no),
                                      text: c.permit_no}),
                             ": " + c.overlap_area_m2.toFixed(2) + " m², " + c.overlap_days + " " + self.t("occ_days") +
                             " (" + c.overlap_start + " – " + c.overlap_end + ")"]);
      })));
      report.clashes.forEach(function (c) { self.highlight(c.permit_no); });
    }
    if ((report.opportunities || []).length) {
      box.appendChild(el("h3", {text: this.t("occ_windows")}));
      box.appendChild(el("ul", {}, report.opportunities.map(function (w) {
        return el("li", {text: w.start + " – " + w.end});
      })));
    }
  };

  /** Outline a clashing permit on the map (its geometry from the API). */
  Tool.prototype.highlight = function (permitNo) {
    var self = this;
    fetch(this.cfg.root + "/api/collections/sidewalk_permits/items/" + encodeURIComponent(permitNo) + "?f=json",
          {credentials: "same-origin", headers: {"Accept": "application/geo+json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (feature) {
        if (!feature || !self.report) { return; }
        var layer = L.geoJSON(feature, {style: {color: self.cfg.colors.clash, weight: 3, dashArray: "6 4",
                                               fillColor: self.cfg.colors.clash, fillOpacity: 0.25}});
        layer.bindTooltip(permitNo, {sticky: true});
        self.clashes.addLayer(layer);
        self.map.getContainer().setAttribute("data-clashes", String(self.clashes.getLayers().length));
      });
  };

  window.GisappOccupancy = {
    init: function (map, cfg) {
      var tool = new Tool(map, cfg);
      window.gisappOccupancy = tool;
      if (document.getElementById("occupancy-tool")) { tool.start(); }
      return tool;
    }
  };
})();
