// Sort a leaderboard by the clicked column; numbers by data-value, text by content.
document.querySelectorAll("table.board").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, col) {
    th.addEventListener("click", function () {
      var numeric = th.dataset.sort === "num";
      var asc = th.dataset.dir !== "asc";
      th.dataset.dir = asc ? "asc" : "desc";
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col], y = b.cells[col];
        var d;
        if (numeric) {
          var u = parseFloat(x.dataset.value), v = parseFloat(y.dataset.value);
          if (isNaN(u)) u = asc ? Infinity : -Infinity;
          if (isNaN(v)) v = asc ? Infinity : -Infinity;
          d = u - v;
        } else {
          d = x.textContent.localeCompare(y.textContent);
        }
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
