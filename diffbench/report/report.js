// Sort a leaderboard by the clicked column. Numbers sort by data-value; the first click on a
// metric puts the best first (data-better: high or low), the next click reverses. Rows without
// a value always go last.
document.querySelectorAll("table.board").forEach(function (table) {
  var headers = table.querySelectorAll("th[data-sort]");
  headers.forEach(function (th, col) {
    th.tabIndex = 0;
    function sort() {
      var numeric = th.dataset.sort === "num";
      var first = th.dataset.better === "high" ? "descending" : "ascending";
      var current = th.getAttribute("aria-sort");
      var order = current === first ? (first === "ascending" ? "descending" : "ascending") : first;
      headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", order);
      var sign = order === "ascending" ? 1 : -1;
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        if (!numeric) return sign * x.textContent.localeCompare(y.textContent);
        var u = parseFloat(x.dataset.value), v = parseFloat(y.dataset.value);
        if (isNaN(u) || isNaN(v)) return (isNaN(u) ? 1 : 0) - (isNaN(v) ? 1 : 0);
        return sign * (u - v);
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (ev) {
      if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sort(); }
    });
  });
});
