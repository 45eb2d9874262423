// Boot guard (a classic, deferred script, so it runs before the module below it and
// needs nothing from it). If the module graph of main.js fails to load, the browser
// fires "error" on its <script> and the page would stay on "Loading miniorch…" for
// ever. Chromium aborts every request in flight with ERR_NETWORK_CHANGED when a network
// link comes or goes, and on this machine the cluster adds a veth for every pod it
// starts, so opening the dashboard while pods start is enough. A failed module fetch is
// remembered by the page (retrying the import cannot work), so reload, a few times at
// most (counted in sessionStorage, reset once the app runs), then say what happened.
(function () {
  "use strict";
  var KEY = "miniorch.boot.reloads";
  var MAX = 3;
  window.addEventListener("error", function (e) {
    var el = e.target;
    if (!el || el.tagName !== "SCRIPT" || el.type !== "module") return;
    var tries = Number(sessionStorage.getItem(KEY) || "0");
    if (tries < MAX) {
      sessionStorage.setItem(KEY, String(tries + 1));
      setTimeout(function () { location.reload(); }, 300 * (tries + 1));
      return;
    }
    sessionStorage.removeItem(KEY);
    var app = document.getElementById("app");
    var p = document.createElement("p");
    p.setAttribute("role", "alert");
    p.className = "alert";
    p.textContent = "The dashboard's scripts could not be loaded (" + MAX + " tries). Reload the page to try again.";
    app.replaceChildren(p);
  }, true);
  window.addEventListener("load", function () {
    if (document.querySelector("#app > .boot") === null) sessionStorage.removeItem(KEY);
  });
})();
