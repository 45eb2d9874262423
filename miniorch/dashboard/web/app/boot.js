// Boot watchdog (a classic script, run before the app's modules).
//
// Chromium aborts requests in flight when the host's network changes
// (net::ERR_NETWORK_CHANGED) — and a miniorch host changes it whenever a pod starts or a
// Service gets its ClusterIP (a veth, an address on the bridge). A module that fails to
// load that way leaves the page on "Loading miniorch…" for good: a failed module fetch
// is remembered by the page, so importing it again cannot work. So: if one of the app's
// scripts fails to load, or the app has not started within a few seconds, reload the
// page — at most three times in a row per tab (counted in sessionStorage, reset once the
// app runs), then say what happened instead of looping.
(function () {
  "use strict";
  var KEY = "miniorch.boot.reloads";
  var MAX = 3;
  var handled = false;

  function booted() {
    return window.__miniorchBooted === true;
  }

  function retry() {
    if (handled || booted()) return;
    handled = true;
    var tries = Number(sessionStorage.getItem(KEY) || "0");
    if (tries < MAX) {
      sessionStorage.setItem(KEY, String(tries + 1));
      setTimeout(function () { location.reload(); }, 300 * (tries + 1));
      return;
    }
    sessionStorage.removeItem(KEY);
    var p = document.createElement("p");
    p.setAttribute("role", "alert");
    p.className = "alert";
    p.textContent = "The dashboard's scripts could not be loaded (" + MAX + " tries; the " +
      "network changed while they loaded, or the cluster stopped). Reload the page to try again.";
    document.getElementById("app").replaceChildren(p);
  }

  window.addEventListener("error", function (event) {
    var el = event.target;
    if (el && el.tagName === "SCRIPT") retry(); // one of our scripts failed to load
  }, true);
  setTimeout(retry, 8000);
  window.addEventListener("miniorch:booted", function () { sessionStorage.removeItem(KEY); });
})();
