// The upload page (issue 20): the file's own progress while it is sent (XHR upload events), then the
// server's stages of the check (read, check, compare) — and, once confirmed, of the import (write) — from
// /upload/<token>/status, until the report replaces the page's content, without a reload.  The address
// becomes /upload/<token>: a refresh or a second tab shows the same state (the server keeps it in a file,
// for every worker).  A failure shows its reason.  Without this script the forms post as before and the
// report comes when the work is done.
(function () {
  "use strict";
  var $ = function (selector) { return document.querySelector(selector); };
  var panel = function () { return $("#upload-progress"); };
  var text = function (name) { var p = panel(); return (p && p.getAttribute("data-text-" + name)) || ""; };

  function show(words, done, total) {
    var p = panel();
    if (!p) { return; }
    p.hidden = false;
    var failure = $("#upload-failure");
    if (failure) { failure.hidden = true; }
    p.querySelector("[data-testid=upload-stage]").textContent = words;
    var bar = p.querySelector("progress");
    if (total) {
      bar.max = total;
      bar.value = Math.min(done || 0, total);
    } else {
      bar.removeAttribute("value");  // indeterminate
    }
  }

  function fail(message) {
    var p = panel();
    if (p) { p.hidden = true; }
    var failure = $("#upload-failure");
    if (failure) {
      failure.textContent = message;
      failure.hidden = false;
    }
    Array.prototype.forEach.call(document.querySelectorAll("form button[type=submit]"),
                                 function (b) { b.disabled = false; });
  }

  function swapIn(pageUrl) {
    fetch(pageUrl, {credentials: "same-origin"}).then(function (r) { return r.text(); }).then(function (html) {
      var doc = new DOMParser().parseFromString(html, "text/html");
      var fresh = doc.querySelector("main.content");
      var current = $("main.content");
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
        if (s.state === "done" || s.state === "imported") {
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

  // Post ``form`` asking for JSON: the server answers where to follow the work (status) and its page.
  function send(form, trackUpload) {
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    if (trackUpload) {
      var mb = function (n) { return (n / 1048576).toFixed(1); };
      xhr.upload.addEventListener("progress", function (e) {
        if (e.lengthComputable) {
          panel().setAttribute("data-sent", String(e.loaded));
          show(text("upload") + ": " + mb(e.loaded) + " / " + mb(e.total) + " MB (" +
               Math.floor(100 * e.loaded / e.total) + "%)", e.loaded, e.total);
        }
      });
    }
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
    show(trackUpload ? text("upload") : text("queued"), 0, 0);
    xhr.send(new FormData(form));
  }

  if (!window.FormData || !window.XMLHttpRequest || !window.fetch) { return; }
  var first = panel();
  if (first && first.getAttribute("data-status-url")) {  // the page of an upload at work (a refresh, a tab)
    poll(first.getAttribute("data-status-url"), first.getAttribute("data-page-url"));
  }
  // delegated: the report that replaces the page's content brings its own confirm form
  document.addEventListener("submit", function (event) {
    var form = event.target;
    var upload = form.matches("form[data-upload-form]");
    if (!(upload || form.matches("form[data-confirm-form]")) || !panel()) { return; }
    event.preventDefault();
    Array.prototype.forEach.call(form.querySelectorAll("button[type=submit]"), function (b) { b.disabled = true; });
    send(form, upload);
  });
})();
