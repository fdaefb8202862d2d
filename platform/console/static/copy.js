// Copy buttons: <button data-copy="ID"> copies the text of #ID.
document.addEventListener("click", function (ev) {
  var b = ev.target.closest("[data-copy]");
  if (!b) { return; }
  var el = document.getElementById(b.getAttribute("data-copy"));
  if (!el || !navigator.clipboard) { return; }
  navigator.clipboard.writeText(el.textContent.trim()).then(function () {
    var label = b.textContent;
    b.textContent = "Copied";
    setTimeout(function () { b.textContent = label; }, 1500);
  });
});
