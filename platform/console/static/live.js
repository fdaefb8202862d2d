// Live parts: a table with data-live="URL" follows that Server-Sent Events
// stream; each event is {id, status, status_reason, last, version, engine,
// capacity, free, running} for the row data-id=id. The page is complete
// without it.
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table[data-live]").forEach(function (table) {
      if (!window.EventSource) { return; }
      var ids = Array.prototype.map.call(table.querySelectorAll("tr[data-id]"), function (tr) { return tr.getAttribute("data-id"); });
      if (ids.length === 0) { return; }
      var src = new EventSource(table.getAttribute("data-live") + "?ids=" + encodeURIComponent(ids.join(",")));
      src.addEventListener("collector", function (ev) {
        var c = JSON.parse(ev.data);
        var tr = table.querySelector('tr[data-id="' + CSS.escape(c.id) + '"]');
        if (!tr) { return; }
        var st = tr.querySelector('[data-field="status"]');
        if (st) { st.textContent = c.status; st.className = "status " + c.status; st.title = c.status_reason || ""; }
        [["last", c.last], ["version", c.version], ["engine", c.engine], ["capacity", c.capacity], ["free", c.free], ["running", c.running]].forEach(function (f) {
          var cell = tr.querySelector('[data-field="' + f[0] + '"]');
          if (cell && f[1] !== undefined) { cell.innerHTML = ""; cell.appendChild(document.createTextNode(f[1])); }
        });
      });
    });
  });
})();
