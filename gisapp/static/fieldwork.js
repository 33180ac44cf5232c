// The inspection form's "use my position" button: fills lon/lat from the browser's geolocation
// (only over HTTPS or on localhost), and says so plainly when the position is refused or unavailable.
(function () {
  "use strict";
  var script = document.currentScript;
  var button = document.querySelector("[data-geo-fill]");
  var message = document.querySelector("[data-geo-message]");
  function lonlat() {
    var lon = parseFloat(document.querySelector("input[name=lon]").value);
    var lat = parseFloat(document.querySelector("input[name=lat]").value);
    return isFinite(lon) && isFinite(lat) ? [lon, lat] : null;
  }

  // Drawing the occupied area: each tap on the small map adds a corner; the polygon goes to the form as GeoJSON.
  var box = document.getElementById("draw-map");
  var draw = null;
  if (box && window.L) {
    var start = lonlat() || [108.2, 16.01];
    var map = L.map(box, {maxZoom: 22}).setView([start[1], start[0]], 20);
    L.control.scale({imperial: false}).addTo(map);
    var corners = [];
    var shape = L.polygon([], {color: "#b71c1c", weight: 2}).addTo(map);
    var here = L.circleMarker([start[1], start[0]], {radius: 6, color: "#1565c0"}).addTo(map);
    var field = document.querySelector("input[name=occupancy]");
    var update = function () {
      shape.setLatLngs(corners);
      if (corners.length >= 3) {
        var ring = corners.map(function (c) { return [c.lng, c.lat]; });
        ring.push(ring[0]);
        field.value = JSON.stringify({type: "Polygon", coordinates: [ring]});
      } else {
        field.value = "";
      }
      box.setAttribute("data-corners", String(corners.length));
    };
    map.on("click", function (e) { corners.push(e.latlng); update(); });
    document.querySelector("[data-draw-clear]").addEventListener("click", function () { corners = []; update(); });
    draw = function (lon, lat) { here.setLatLng([lat, lon]); map.setView([lat, lon], map.getZoom()); };
  }

  if (!button) { return; }
  button.addEventListener("click", function () {
    if (!navigator.geolocation || !window.isSecureContext) {
      message.textContent = script.dataset.denied;
      return;
    }
    navigator.geolocation.getCurrentPosition(function (pos) {
      document.querySelector("input[name=lon]").value = pos.coords.longitude.toFixed(7);
      document.querySelector("input[name=lat]").value = pos.coords.latitude.toFixed(7);
      message.textContent = "± " + Math.round(pos.coords.accuracy) + " m";
      if (draw) { draw(pos.coords.longitude, pos.coords.latitude); }
    }, function (err) {
      message.textContent = err.code === 1 ? script.dataset.denied : script.dataset.unavailable;
    }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 30000});
  });
}());
