// Small SVG charts drawn here (no chart library): horizontal bars and histograms, themed by CSS.

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
