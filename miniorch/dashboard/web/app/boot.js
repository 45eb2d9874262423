// Boot watchdog (a classic script, run before the app's modules).
//
// Chromium aborts requests in flight when the host's network changes
// (net::ERR_NETWORK_CHANGED) — and a miniorch host changes it whenever a pod starts or a
// Service gets its ClusterIP (a veth, an address on the bridge). A module that fails to
// load that way leaves the page on "Loading miniorch…" for good, since a failed module
// is not fetched again. So: if the app has not started within a few seconds, or one of
// its scripts failed to load, reload the page — at most three times in a row per tab,
// then say what happened instead of looping.
(function () {
  "use strict";
  var KEY = "miniorch.bootAttempts";
  var attempts = Number(sessionStorage.getItem(KEY) || "0");
  var done = false;

  function retry() {
    if (done || window.__miniorchBooted) return;
    done = true;
    if (attempts < 3) {
      sessionStorage.setItem(KEY, String(attempts + 1));
      location.reload();
      return;
    }
    sessionStorage.removeItem(KEY);
    var box = document.getElementById("app");
    if (box) {
      box.textContent = "The dashboard could not load its scripts (the network changed while " +
        "it loaded, or the cluster stopped). Reload the page to try again.";
    }
  }

  window.addEventListener("error", function (event) {
    var target = event.target;
    if (target && target.tagName === "SCRIPT") retry(); // a script of ours failed to load
  }, true);
  setTimeout(retry, 5000);
  window.addEventListener("miniorch:booted", function () {
    sessionStorage.removeItem(KEY);
  });
})();
