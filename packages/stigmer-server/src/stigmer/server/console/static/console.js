// Stigmer console: live updates of the runs list and of a run's page. Every element with
// `data-live="URL"` is refreshed from URL (an HTML fragment) every 1.5 s; a run page stops once
// the run has ended. No framework, no build step.
(function () {
  "use strict";
  var INTERVAL = 1500;

  function busy(el) {
    var active = document.activeElement;
    return active && el.contains(active) && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.tagName === "SELECT");
  }

  function refresh(el) {
    var url = el.getAttribute("data-live");
    if (!url) return;
    if (busy(el)) { setTimeout(function () { refresh(el); }, INTERVAL); return; }
    // A run page says what it shows (last event, phase): the server answers 204 when nothing changed.
    var marker = el.querySelector("[data-seq]");
    if (marker) {
      url += "&seq=" + encodeURIComponent(marker.getAttribute("data-seq")) +
        "&phase=" + encodeURIComponent(marker.getAttribute("data-phase"));
    }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (r) {
        if (r.status === 401) { window.location.reload(); return null; }
        return r.status === 200 ? r.text() : null;
      })
      .then(function (html) {
        if (html !== null && html !== undefined && !busy(el)) {
          var openDetails = {};
          el.querySelectorAll("details[open]").forEach(function (d, i) { openDetails[i] = true; });
          el.innerHTML = html;
          var marker = el.querySelector("[data-terminal]");
          if (marker && marker.getAttribute("data-terminal") === "1") {
            el.removeAttribute("data-live");
            document.body.setAttribute("data-run-ended", "1");
            return;
          }
        }
        el.setAttribute("data-refreshed", String(Date.now()));
        setTimeout(function () { refresh(el); }, INTERVAL);
      })
      .catch(function () { setTimeout(function () { refresh(el); }, INTERVAL * 2); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live]").forEach(function (el) {
      setTimeout(function () { refresh(el); }, INTERVAL);
    });
  });
})();
