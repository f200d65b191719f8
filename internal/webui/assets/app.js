// Keeps the live parts of the page current: every element with data-live-src is replaced by
// a fresh render from that URL every few seconds, until the server renders it with
// data-live="false" (a finished run). Polling pauses while the tab is hidden.
(function () {
  "use strict";
  var interval = Number(document.body.dataset.refreshMs) || 2000;

  function refresh(id) {
    var el = document.getElementById(id);
    if (!el || el.dataset.live === "false") {
      return;
    }
    setTimeout(function () {
      if (document.hidden) {
        refresh(id);
        return;
      }
      fetch(el.dataset.liveSrc, { headers: { Accept: "text/html" }, cache: "no-store" })
        .then(function (resp) {
          return resp.ok ? resp.text() : null;
        })
        .then(function (html) {
          var current = document.getElementById(id);
          if (html !== null && current) {
            current.outerHTML = html;
          }
        })
        .catch(function () {
          // The server is restarting or the network is down: the next round tries again.
        })
        .then(function () {
          refresh(id);
        });
    }, interval);
  }

  document.querySelectorAll("[data-live-src]").forEach(function (el) {
    refresh(el.id);
  });
})();
