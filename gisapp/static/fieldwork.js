// The inspection form's "use my position" button: fills lon/lat from the browser's geolocation
// (only over HTTPS or on localhost), and says so plainly when the position is refused or unavailable.
(function () {
  "use strict";
  var script = document.currentScript;
  var button = document.querySelector("[data-geo-fill]");
  var message = document.querySelector("[data-geo-message]");
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
    }, function (err) {
      message.textContent = err.code === 1 ? script.dataset.denied : script.dataset.unavailable;
    }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 30000});
  });
}());
