// The upload page (issue 20): the file's own progress while it is sent (XHR upload events), then the
// server's stages of the check (read, check, compare) from /upload/<token>/status, until the report
// replaces the page's content, without a reload.  The address becomes /upload/<token>: a refresh or a
// second tab shows the same state (the server keeps it in a file, for every worker).  A failure shows its
// reason.  Without this script the form posts as before and the report comes when the check is done.
(function () {
  "use strict";
  var panel = document.getElementById("upload-progress");
  if (!panel) { return; }
  var stage = panel.querySelector("[data-testid=upload-stage]");
  var bar = panel.querySelector("progress");
  var failure = document.getElementById("upload-failure");
  var text = function (name) { return panel.getAttribute("data-text-" + name) || ""; };

  function show(words, done, total) {
    panel.hidden = false;
    if (failure) { failure.hidden = true; }
    stage.textContent = words;
    if (total) {
      bar.max = total;
      bar.value = Math.min(done || 0, total);
    } else {
      bar.removeAttribute("value");  // indeterminate
    }
  }

  function fail(message) {
    panel.hidden = true;
    if (failure) {
      failure.textContent = message;
      failure.hidden = false;
    }
    var button = document.querySelector("form[data-upload-form] button[type=submit]");
    if (button) { button.disabled = false; }
  }

  function swapIn(pageUrl) {
    fetch(pageUrl, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.querySelector("main.content");
      var current = document.querySelector("main.content");
      if (fresh && current) {
        current.replaceWith(document.importNode(fresh, true));
        document.title = doc.title;
      } else {
        window.location.assign(pageUrl);
      }
    }, function () { window.location.assign(pageUrl); });
  }

  function poll(statusUrl, pageUrl) {
    fetch(statusUrl, {credentials: "same-origin", headers: {Accept: "application/json"}})
      .then(function (r) { return r.json(); })
      .then(function (s) {
        if (s.state === "done") {
          show(text("ready"), 1, 1);
          swapIn(pageUrl);
        } else if (s.state === "failed" || s.state === "unknown") {
          fail(s.error || text("network"));
        } else {
          show(s.text, s.done, s.total);
          setTimeout(function () { poll(statusUrl, pageUrl); }, 400);
        }
      }, function () { setTimeout(function () { poll(statusUrl, pageUrl); }, 1500); });
  }

  if (panel.getAttribute("data-status-url")) {  // the page of an upload being checked (a refresh, another tab)
    poll(panel.getAttribute("data-status-url"), panel.getAttribute("data-page-url"));
    return;
  }

  var form = document.querySelector("form[data-upload-form]");
  if (!form || !window.FormData || !window.XMLHttpRequest) { return; }
  var mb = function (n) { return (n / 1048576).toFixed(1); };
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var button = form.querySelector("button[type=submit]");
    if (button) { button.disabled = true; }
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        panel.setAttribute("data-sent", String(e.loaded));
        show(text("upload") + ": " + mb(e.loaded) + " / " + mb(e.total) + " MB (" +
             Math.floor(100 * e.loaded / e.total) + "%)", e.loaded, e.total);
      }
    });
    xhr.addEventListener("load", function () {
      var body = null;
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = null; }
      if (!body || xhr.status >= 400 || body.error) {
        fail((body && body.error) || (text("network") + " (HTTP " + xhr.status + ")"));
        return;
      }
      history.replaceState(null, "", body.page);
      show(text("queued"));
      poll(body.status, body.page);
    });
    xhr.addEventListener("error", function () { fail(text("network")); });
    show(text("upload"), 0, 0);
    xhr.send(new FormData(form));
  });
})();
