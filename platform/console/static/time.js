// Times are rendered in UTC by the server; show them in the browser's time
// zone (the UTC value stays in the title, on hover).
(function () {
  function localize(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d)) { el.textContent = d.toLocaleString(); }
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localize(document); });
  window.collectorLocalize = localize;
})();
