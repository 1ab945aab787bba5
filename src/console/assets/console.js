// hotline console: SLA countdowns. Every <time class="countdown"
// datetime="RFC 3339"> shows the time left (or overdue) and ticks each
// second; a card whose deadline passes turns "breached". The server renders
// the same text first, so the pages work without this script.
(function () {
  "use strict";

  function text(ms) {
    var span = Math.floor(Math.abs(ms) / 1000);
    var d = Math.floor(span / 86400);
    var h = Math.floor((span % 86400) / 3600);
    var m = Math.floor((span % 3600) / 60);
    var s = span % 60;
    var pad = function (n) { return (n < 10 ? "0" : "") + n; };
    var t;
    if (d > 0) {
      t = d + "d " + h + "h";
    } else if (h > 0) {
      t = h + "h " + pad(m) + "m";
    } else {
      t = m + "m " + pad(s) + "s";
    }
    return ms < 0 ? t + " overdue" : "in " + t;
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("time.countdown").forEach(function (el) {
      var due = Date.parse(el.getAttribute("datetime"));
      if (isNaN(due)) {
        return;
      }
      var left = due - now;
      el.textContent = text(left);
      if (left < 0) {
        el.classList.add("overdue");
        var card = el.closest(".card");
        if (card) {
          card.classList.add("breached");
        }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    tick();
    setInterval(tick, 1000);
  });
})();
