// Small SVG charts drawn here (no chart library): bars, histograms, epoch curves and a confusion heatmap, themed by CSS.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function svg(width, height, title) {
  const root = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img" });
  root.append(el("title", {}, title));
  return root;
}

export function empty(message) {
  const div = document.createElement("div");
  div.className = "empty";
  div.textContent = message;
  return div;
}

const fmt = (value, digits = 3) => (Math.abs(value) >= 1000 ? value.toFixed(0) : value.toPrecision(digits));

// rows: [{label, value}], best first. Values are drawn against `max` (default: the largest).
export function barChart(rows, { title = "", max, format = (v) => fmt(v), width = 560, rowHeight = 26, labelWidth = 190, cls = "" } = {}) {
  if (!rows.length) return empty("nothing to show yet");
  const top = max ?? Math.max(...rows.map((r) => r.value), 1e-12);
  const plot = width - labelWidth - 64;
  const root = svg(width, rows.length * rowHeight + 4, title);
  rows.forEach((row, i) => {
    const y = i * rowHeight + 2;
    const w = Math.max(1, (plot * row.value) / top);
    const label = row.label.length > 26 ? `${row.label.slice(0, 25)}…` : row.label;
    root.append(el("text", { x: labelWidth - 8, y: y + rowHeight / 2 + 4, "text-anchor": "end" }, label));
    root.append(el("rect", { x: labelWidth, y: y + 4, width: plot, height: rowHeight - 8, rx: 4, class: "track" }));
    root.append(el("rect", { x: labelWidth, y: y + 4, width: w, height: rowHeight - 8, rx: 4, class: `bar ${cls}` }));
    root.append(el("text", { x: labelWidth + w + 6, y: y + rowHeight / 2 + 4, class: "value" }, format(row.value)));
  });
  return root;
}

// Counts per bin between edges (edges.length = counts.length + 1); a few ticks on the x axis.
export function histogram(edges, counts, { title = "", width = 560, height = 190, cls = "", xFormat = (v) => fmt(v, 2) } = {}) {
  const total = counts.reduce((a, b) => a + b, 0);
  if (!total) return empty("no values yet");
  const pad = { left: 36, right: 8, top: 10, bottom: 26 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const top = Math.max(...counts);
  const barW = plotW / counts.length;
  const root = svg(width, height, title);
  root.append(el("line", { x1: pad.left, x2: width - pad.right, y1: pad.top + plotH, y2: pad.top + plotH, class: "axis" }));
  counts.forEach((count, i) => {
    const h = (plotH * count) / top;
    const bar = el("rect", {
      x: pad.left + i * barW + 1, y: pad.top + plotH - h, width: Math.max(1, barW - 2), height: h, rx: 2, class: `bar ${cls}`,
    });
    bar.append(el("title", {}, `${xFormat(edges[i])} – ${xFormat(edges[i + 1])}: ${count}`));
    root.append(bar);
  });
  for (const frac of [0, 0.25, 0.5, 0.75, 1]) {
    const value = edges[0] + frac * (edges[edges.length - 1] - edges[0]);
    const anchor = frac === 0 ? "start" : frac === 1 ? "end" : "middle";
    root.append(el("text", { x: pad.left + frac * plotW, y: height - 8, "text-anchor": anchor }, xFormat(value)));
  }
  root.append(el("text", { x: pad.left - 6, y: pad.top + 8, "text-anchor": "end" }, String(top)));
  root.append(el("text", { x: pad.left - 6, y: pad.top + plotH, "text-anchor": "end" }, "0"));
  return root;
}

// Bin raw values (e.g. an embedding) into `bins` equal-width bins between their min and max.
export function binValues(values, bins = 40) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) { lo -= 0.5; hi += 0.5; }
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(((v - lo) / (hi - lo)) * bins))] += 1;
  const edges = Array.from({ length: bins + 1 }, (_, i) => lo + ((hi - lo) * i) / bins);
  return { edges, counts };
}

// A round step (1, 2, 2.5 or 5 times a power of ten) that cuts `range` into about four intervals.
function niceStep(range) {
  const raw = range / 4;
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * power;
}

const plain = (v) => String(Number(v.toFixed(6)));

// The y range rounded out to whole steps, unless the caller fixed an end (accuracy runs 0 to 1).
function yScale(values, yMin, yMax) {
  let lo = yMin ?? Math.min(...values);
  let hi = yMax ?? Math.max(...values);
  if (hi - lo < 1e-9) hi = lo + 1;
  const step = niceStep(hi - lo);
  if (yMin == null) lo = Math.floor(lo / step) * step;
  if (yMax == null) hi = Math.ceil(hi / step) * step;
  return { lo, hi, step };
}

// Horizontal grid lines with their values, epoch numbers (at most about ten) and the axis title.
function epochAxes(root, f, { lo, hi, step }, yFormat) {
  for (let value = lo, i = 0; value <= hi + step / 1e6; value = lo + step * ++i) {
    root.append(el("line", { x1: f.left, x2: f.right, y1: f.Y(value), y2: f.Y(value), class: i ? "grid" : "axis" }));
    root.append(el("text", { x: f.left - 6, y: f.Y(value) + 4, "text-anchor": "end" }, yFormat(value)));
  }
  const every = Math.max(1, Math.ceil((f.epochs - 1) / 10));
  for (let x = 1; x <= f.epochs; x += every) {
    root.append(el("text", { x: f.X(x), y: f.bottom + 16, "text-anchor": "middle" }, String(x)));
  }
  root.append(el("text", { x: (f.left + f.right) / 2, y: f.bottom + 34, "text-anchor": "middle", class: "axis-label" }, "epoch"));
}

// Line chart of per-epoch values. series: [{name, cls, points: [[epoch, value], ...]}]; the x axis runs from
// epoch 1 to `xMax` (the planned epochs), so a live run's curves grow into the chart instead of rescaling it.
export function lineChart(series, { title = "", width = 560, height = 240, xMax = 1, yMin, yMax, yFormat = plain, tipFormat = (v) => fmt(v, 4) } = {}) {
  const points = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (!points.length) return empty("no finished epoch yet");
  const range = yScale(points.map(([, y]) => y), yMin, yMax);
  const f = { left: 46, right: width - 14, top: 28, bottom: height - 42, epochs: Math.max(2, xMax, ...points.map(([x]) => x)) };
  f.X = (x) => f.left + ((x - 1) / (f.epochs - 1)) * (f.right - f.left);
  f.Y = (y) => f.bottom - ((y - range.lo) / (range.hi - range.lo)) * (f.bottom - f.top);
  const root = svg(width, height, title);
  epochAxes(root, f, range, yFormat);
  series.forEach((s, k) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y));
    root.append(el("polyline", { points: pts.map(([x, y]) => `${f.X(x)},${f.Y(y)}`).join(" "), class: `line ${s.cls}` }));
    for (const [x, y] of pts) {
      const dot = el("circle", { cx: f.X(x), cy: f.Y(y), r: 3.5, class: `dot ${s.cls}`, "data-series": s.name, "data-epoch": x });
      dot.append(el("title", {}, `${s.name}, epoch ${x}: ${tipFormat(y)}`));
      root.append(dot);
    }
    const lx = f.right - (series.length - k) * 110;
    root.append(el("rect", { x: lx, y: 6, width: 14, height: 4, rx: 2, class: `swatch ${s.cls}` }));
    root.append(el("text", { x: lx + 20, y: 12 }, s.name));
  });
  return root;
}

// Confusion matrix: rows are true classes, columns predictions. A cell's colour strength is its share of the
// row (recall on the diagonal); green on the diagonal, red off it; counts are written in cells big enough.
export function heatmap(classes, rows, { title = "confusion matrix", id } = {}) {
  const n = classes.length;
  if (!n) return empty("no classes");
  const size = Math.max(10, Math.min(56, Math.floor(560 / n)));
  const names = classes.map((c) => (c.length > 14 ? `${c.slice(0, 13)}…` : c));
  const left = 18 + 7 * Math.max(...names.map((c) => c.length));
  const top = 26 + (size >= 30 ? 16 : 7 * Math.max(...names.map((c) => c.length)));
  const width = left + n * size + 6;
  const root = svg(width, top + n * size + 6, title);
  root.setAttribute("class", "chart heat");
  root.setAttribute("style", `max-width:${width}px`);
  if (id) root.id = id;
  root.append(el("text", { x: left + (n * size) / 2, y: 12, "text-anchor": "middle", class: "axis-label" }, "predicted →"));
  root.append(el("text", { x: 4, y: top - 6, class: "axis-label" }, "true ↓"));
  names.forEach((name, j) => {
    const cx = left + j * size + size / 2;
    const attrs = size >= 30 ? { x: cx, y: top - 6, "text-anchor": "middle" }
      : { x: cx + 4, y: top - 6, transform: `rotate(-90 ${cx + 4} ${top - 6})` };
    root.append(el("text", { ...attrs, class: "col-label" }, name));
  });
  rows.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0) || 1;
    const y = top + i * size;
    root.append(el("text", { x: left - 6, y: y + size / 2 + 4, "text-anchor": "end", class: "row-label" }, names[i]));
    row.forEach((count, j) => {
      const kind = count === 0 ? "zero" : i === j ? "hit" : "miss";
      const cell = el("rect", {
        x: left + j * size, y, width: size - 2, height: size - 2, rx: 3, class: `cell ${kind}`,
        "fill-opacity": count ? (0.25 + (0.75 * count) / total).toFixed(3) : 1,
        "data-row": i, "data-col": j, "data-count": count,
      });
      cell.append(el("title", {}, `true ${classes[i]} → predicted ${classes[j]}: ${count} (${((100 * count) / total).toFixed(1)}% of the row)`));
      root.append(cell);
      if (count && size >= 20) {
        root.append(el("text", { x: left + j * size + (size - 2) / 2, y: y + size / 2 + 3, "text-anchor": "middle", class: "cell-count" }, String(count)));
      }
    });
  });
  return root;
}
