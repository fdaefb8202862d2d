// The job page's live part: a running job's logs and state over
// Server-Sent Events (data-events="URL" on the log). The page is complete
// without it; a finished job's page has no stream.
(function () {
  document.addEventListener("DOMContentLoaded", function () {
    var log = document.getElementById("job-log");
    if (!log || !window.EventSource || !log.getAttribute("data-events")) { return; }
    var src = new EventSource(log.getAttribute("data-events"));
    var set = function (id, text) { var el = document.getElementById(id); if (el) { el.textContent = text; } };
    src.addEventListener("job", function (ev) {
      var j = JSON.parse(ev.data);
      if (j.log) {
        var atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        log.appendChild(document.createTextNode(j.log));
        if (atEnd) { log.scrollTop = log.scrollHeight; }
      }
      var st = document.getElementById("job-state");
      if (st) { st.textContent = j.state; st.className = "status " + j.state; }
      set("job-records", String(j.records));
      set("job-refused", String(j.refused));
      // Finished: the page again, with the whole outcome (timeline, exit
      // code, duration, peaks) as the server has it.
      if (j.finished) { src.close(); location.reload(); }
    });
  });
})();
