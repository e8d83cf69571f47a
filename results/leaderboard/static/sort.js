/* Sortable tables of the LipSim Bench leaderboard: click a column header to sort its rows.
   Numbers sort numerically (best first on the first click, then the other way), text alphabetically;
   an empty cell (no score) always goes last. A cell's data-sort attribute, where
   present, is its sort key (a score with its interval below it sorts by the score); otherwise its text. No library, no network: the page works from file://. */
(function () {
  "use strict";

  function key(row, index) {
    var cell = row.cells[index];
    if (!cell) {
      return null;
    }
    var value = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    return value === "" ? null : value;
  }

  function sortBy(table, index, header) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var numeric = header.getAttribute("data-type") === "number";
    var current = header.getAttribute("aria-sort");
    var ascending = current ? current === "descending" : !numeric;
    rows.sort(function (a, b) {
      var x = key(a, index);
      var y = key(b, index);
      if (x === null || y === null) {
        return x === y ? 0 : x === null ? 1 : -1;
      }
      var order = numeric ? parseFloat(x) - parseFloat(y) : x.localeCompare(y);
      return ascending ? order : -order;
    });
    rows.forEach(function (row) {
      body.appendChild(row);
    });
    Array.prototype.forEach.call(table.querySelectorAll("th[aria-sort]"), function (th) {
      th.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
  }

  Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
    var head = table.tHead.rows[table.tHead.rows.length - 1];
    Array.prototype.forEach.call(head.cells, function (header, index) {
      var button = header.querySelector("button");
      if (button) {
        button.addEventListener("click", function () {
          sortBy(table, index, header);
        });
      }
    });
  });
})();
