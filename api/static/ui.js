// Tiny DOM helpers shared by the views: element builder, formatting, badges, progress bars, toasts.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export const pct = (x) => (x == null ? "–" : `${(100 * x).toFixed(1)}%`);
export const num = (x, digits = 3) => (x == null ? "–" : Number(x).toFixed(digits));

export function duration(seconds) {
  if (seconds == null) return "–";
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m ${Math.round(seconds % 60)}s`;
  return `${Math.floor(seconds / 3600)}h ${Math.round((seconds % 3600) / 60)}m`;
}

export function when(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export const badge = (state) => h("span", { class: `badge ${state}`, dataset: { state } }, state);

// Succeeded (green), failed (red) and cancelled (amber) segments of one bar.
export function progressBar(counts, big = false) {
  const total = counts.total || 1;
  const part = (n, cls) => h("span", { class: cls, style: `width:${(100 * n) / total}%` });
  return h("div", { class: `progress${big ? " big" : ""}`, role: "progressbar",
                    "aria-valuenow": Math.round((100 * (total - counts.pending)) / total) },
    part(counts.succeeded, "ok"), part(counts.failed, "bad"), part(counts.cancelled, "skip"));
}

export const stat = (key, value, id) => h("div", { class: "stat" }, h("div", { class: "k" }, key),
  h("div", { class: "v", id }, value));

let toastTimer;
export function toast(message, ok = false) {
  const box = document.getElementById("toast");
  box.textContent = message;
  box.className = ok ? "ok" : "";
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, ok ? 3000 : 7000);
}

export const FINAL = new Set(["completed", "failed", "cancelled"]);
