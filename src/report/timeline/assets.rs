//! The page's fixed parts: the document head with its style, and the little script that marks
//! a bar's parents. Inline, so that the file opens with no network.

/// Everything before the header; the icon is empty so that the browser asks no server for one.
pub(super) const HEAD: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kolla-build run</title>
<link rel="icon" href="data:,">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 16px 24px; color: #1d1d1f; background: #fff; }
h1 { font-size: 20px; margin: 0 0 8px; }
.status.success { color: #2b7a4b; } .status.failed, .status.error { color: #b52a25; }
.status.interrupted { color: #9a6700; }
p.error { color: #b52a25; white-space: pre-wrap; margin: 4px 0; }
dl.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 2px 24px; margin: 8px 0; }
dl.facts div { display: flex; gap: 8px; } dt { color: #666; min-width: 130px; } dd { margin: 0; }
p.legend span { margin-right: 16px; white-space: nowrap; } p.hint { color: #666; margin: 4px 0 12px; }
i.swatch { display: inline-block; width: 14px; height: 10px; margin-right: 5px; border-radius: 2px; vertical-align: -1px; }
#chart { overflow-x: auto; }
svg text { font: 11px sans-serif; fill: #fff; pointer-events: none; }
svg text.lane, svg text.tick, svg text.group { fill: #444; pointer-events: auto; }
svg text.tick { text-anchor: middle; } svg text.group { font-weight: 600; }
line.tick { stroke: #e4e4e4; }
g.built rect { fill: #2f8f57; } i.built { background: #2f8f57; }
g.fresh rect { fill: #8ec3e6; } i.fresh { background: #8ec3e6; }
g.failed rect { fill: #c9302c; } i.failed { background: #c9302c; }
g.push-failed rect { fill: #e0702a; } i.push-failed { background: #e0702a; }
g.skipped rect { fill: #a9a9a9; } i.skipped { background: #a9a9a9; }
g.parent-failed rect { fill: #e8b04a; } i.parent-failed { background: #e8b04a; }
g.cancelled rect { fill: #6e6e6e; } i.cancelled { background: #6e6e6e; }
g.not-built rect { fill: #4a4a4a; } i.not-built { background: #4a4a4a; }
g.fresh text, g.skipped text, g.parent-failed text { fill: #1d1d1f; }
rect.push { fill: #7a5fb5; } i.push { background: #7a5fb5; } rect.tags { fill: #b59fe0; }
g.bar { cursor: pointer; } g.bar:hover rect, g.bar:focus rect { stroke: #0060df; stroke-width: 2; }
g.bar:focus { outline: none; }
g.critical rect { stroke: #111; stroke-width: 2.5; }
i.critical-swatch { background: #fff; border: 2.5px solid #111; width: 10px; height: 6px; }
body.selecting g.bar { opacity: 0.25; }
body.selecting g.bar.selected, body.selecting g.bar.ancestor { opacity: 1; }
g.bar.selected rect { stroke: #0060df; stroke-width: 3; }
g.bar.ancestor rect { stroke: #0060df; stroke-width: 2; stroke-dasharray: 4 2; }
#details { border: 1px solid #ccc; border-radius: 4px; padding: 8px 12px; margin-top: 12px; max-width: 900px; }
#details pre { margin: 0 0 6px; white-space: pre-wrap; font: inherit; }
#details button { margin: 0 6px 0 0; }
</style>
</head>
<body>
"##;

/// Selecting a bar marks its ancestors and shows its details with a button per parent.
pub(super) const SCRIPT: &str = r#"
(function () {
  var bars = Array.prototype.slice.call(document.querySelectorAll("g[data-image]"));
  var byName = {};
  bars.forEach(function (b) { byName[b.getAttribute("data-image")] = b; });
  var details = document.getElementById("details");
  function parentsOf(name) {
    var b = byName[name];
    var text = b ? b.getAttribute("data-parents") : "";
    return text ? text.split(" ") : [];
  }
  function ancestors(name) {
    var seen = {}, todo = parentsOf(name);
    while (todo.length) {
      var p = todo.pop();
      if (!seen[p]) { seen[p] = true; todo = todo.concat(parentsOf(p)); }
    }
    return Object.keys(seen);
  }
  function clear() {
    document.body.classList.remove("selecting");
    bars.forEach(function (b) { b.classList.remove("selected", "ancestor"); });
    details.hidden = true;
  }
  function select(name) {
    clear();
    var bar = byName[name];
    if (!bar) { return; }
    document.body.classList.add("selecting");
    bar.classList.add("selected");
    ancestors(name).forEach(function (a) { if (byName[a]) { byName[a].classList.add("ancestor"); } });
    details.textContent = "";
    var pre = document.createElement("pre");
    pre.textContent = bar.querySelector("title").textContent;
    details.appendChild(pre);
    parentsOf(name).forEach(function (p) {
      var button = document.createElement("button");
      button.textContent = "parent: " + p;
      button.addEventListener("click", function () { select(p); });
      details.appendChild(button);
    });
    details.hidden = false;
  }
  bars.forEach(function (b) {
    var name = b.getAttribute("data-image");
    b.addEventListener("click", function (e) { e.stopPropagation(); select(name); });
    b.addEventListener("keydown", function (e) { if (e.key === "Enter") { select(name); } });
  });
  document.addEventListener("keydown", function (e) { if (e.key === "Escape") { clear(); } });
})();
"#;
