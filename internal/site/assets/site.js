// ledgerlake docs: every page is a <section class="page"> of this one file, shown by the link after
// "#" (#table/signicat_invoices, #run/<id>, #test/<name>), so deep links work from disk and from
// `extract serve` alike. Search looks through the tables and columns on the page itself.
(function () {
  "use strict";
  var pages = document.querySelectorAll("section.page");

  function route() {
    var id = decodeURIComponent(location.hash.slice(1)) || "home";
    var target = document.getElementById(id);
    var page = target && target.closest("section.page");
    if (!page) { page = document.getElementById("not-found"); target = null; }
    pages.forEach(function (s) { s.classList.toggle("current", s === page); });
    document.querySelectorAll("header nav a").forEach(function (a) {
      a.classList.toggle("active", a.dataset.section === page.dataset.section);
    });
    document.querySelectorAll(".hit").forEach(function (e) { e.classList.remove("hit"); });
    document.title = page.dataset.title + " · ledgerlake";
    if (target && target !== page) {
      target.classList.add("hit");
      target.scrollIntoView({ block: "center" });
    } else {
      window.scrollTo(0, 0);
    }
  }
  window.addEventListener("hashchange", route);
  route();
  // The browser's own jump to the element a link names comes after this script: take the place back.
  window.addEventListener("load", function () { setTimeout(route, 0); });

  // The search index: each table's name and description, and each column's name, type and description.
  var index = [];
  document.querySelectorAll("section.table-page").forEach(function (s) {
    var table = s.dataset.table;
    var desc = (s.querySelector("h1 + p") || {}).textContent || "";
    index.push({ href: "#table/" + table, name: table, what: "table", text: desc.toLowerCase(), rank: 0 });
    s.querySelectorAll("tr.column").forEach(function (r) {
      var cells = r.querySelectorAll("td");
      index.push({ href: "#" + r.id, name: table + "." + r.dataset.column, col: r.dataset.column,
        what: cells[1].textContent, text: cells[2].textContent.toLowerCase(), rank: 1 });
    });
  });

  var input = document.getElementById("search");
  var list = document.getElementById("search-results");
  var sel = -1;

  function search(q) {
    q = q.trim().toLowerCase();
    list.innerHTML = "";
    sel = -1;
    if (!q) { list.hidden = true; return; }
    var hits = [];
    index.forEach(function (e) {
      var name = (e.col || e.name).toLowerCase();
      var score = name === q ? 0 : name.indexOf(q) === 0 ? 1 : e.name.toLowerCase().indexOf(q) >= 0 ? 2 : e.text.indexOf(q) >= 0 ? 4 : -1;
      if (score >= 0) hits.push({ e: e, score: score + e.rank });
    });
    hits.sort(function (a, b) { return a.score - b.score || a.e.name.localeCompare(b.e.name); });
    hits.slice(0, 40).forEach(function (h) {
      var li = document.createElement("li");
      var a = document.createElement("a");
      a.href = h.e.href;
      a.textContent = h.e.name + " ";
      var small = document.createElement("small");
      small.textContent = h.e.what;
      a.appendChild(small);
      li.appendChild(a);
      list.appendChild(li);
    });
    if (!hits.length) {
      var li = document.createElement("li");
      li.textContent = "  nothing matches “" + q + "”";
      list.appendChild(li);
    }
    list.hidden = false;
  }

  function highlight(i) {
    var links = list.querySelectorAll("a");
    if (!links.length) return;
    sel = (i + links.length) % links.length;
    links.forEach(function (a, k) { a.classList.toggle("sel", k === sel); });
    links[sel].scrollIntoView({ block: "nearest" });
  }

  input.addEventListener("input", function () { search(input.value); });
  input.addEventListener("keydown", function (ev) {
    if (ev.key === "ArrowDown") { highlight(sel + 1); ev.preventDefault(); }
    else if (ev.key === "ArrowUp") { highlight(sel - 1); ev.preventDefault(); }
    else if (ev.key === "Enter") {
      var a = list.querySelectorAll("a")[Math.max(sel, 0)];
      if (a) { location.hash = a.getAttribute("href"); list.hidden = true; }
    } else if (ev.key === "Escape") { list.hidden = true; }
  });
  list.addEventListener("click", function (ev) { if (ev.target.closest("a")) list.hidden = true; });
  document.addEventListener("click", function (ev) { if (!ev.target.closest(".search")) list.hidden = true; });
  document.addEventListener("keydown", function (ev) {
    if (ev.key === "/" && document.activeElement !== input) { input.focus(); ev.preventDefault(); }
  });

  // Lineage: fitted to the page's width at first; the button shows it at full size, to scroll.
  var frame = document.querySelector(".graph");
  var size = document.getElementById("graph-size");
  if (frame && size) {
    size.hidden = false;
    size.addEventListener("click", function () {
      var fit = frame.classList.toggle("fit");
      size.textContent = fit ? "Full size" : "Fit to width";
    });
  }
  // Lineage: pointing at a node lights up its edges.
  var graph = document.querySelector("svg.lineage");
  if (graph) {
    graph.addEventListener("mouseover", function (ev) {
      var node = ev.target.closest("a.node");
      if (!node) return;
      var id = node.dataset.node;
      graph.classList.add("focus");
      graph.querySelectorAll(".edge").forEach(function (e) {
        e.classList.toggle("lit", e.dataset.from === id || e.dataset.to === id);
      });
    });
    graph.addEventListener("mouseleave", function () { graph.classList.remove("focus"); });
  }
})();
