// Models list: the built-in models and every version of the tenant's custom models, with their scores.

import { getJSON } from "./api.js";
import { empty } from "./charts.js";
import { h, num, pct, toast, when } from "./ui.js";

function row(m) {
  const href = `#/models/${m.ref}`;
  const metric = (key, fmt) => (m.metrics && m.metrics[key] != null ? fmt(m.metrics[key]) : "–");
  return h("tr", { onclick: () => { location.hash = href; }, dataset: { model: m.ref } },
    h("td", {}, h("a", { href }, m.name), m.latest && !m.builtin ? h("span", { class: "badge ok", style: "margin-left:8px" }, "latest") : null),
    h("td", { class: "num" }, m.version == null ? "–" : String(m.version)),
    h("td", {}, m.builtin ? h("span", { class: "muted" }, "built-in") : `${m.base_model} · ${m.mode}`),
    h("td", { class: "num" }, String(m.num_classes)),
    h("td", { class: "num" }, metric("val_accuracy", pct)),
    h("td", { class: "num" }, metric("top5_accuracy", pct)),
    h("td", { class: "num" }, metric("macro_f1", (v) => num(v, 3))),
    h("td", { class: "muted" }, m.builtin ? m.weights : when(m.created_at)));
}

export function renderModels(root) {
  const body = h("tbody");
  const note = h("div");
  root.append(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Models"), h("div", { class: "sub" }, "Built-in ImageNet models and the ones trained here, every version")),
      h("a", { class: "btn primary", href: "#/train" }, "Train a model")),
    h("div", { class: "card" },
      h("table", { id: "models-table" },
        h("thead", {}, h("tr", {}, ["Name", "Version", "Base · mode", "Classes", "Val. acc.", "Val. top-5", "Macro F1", "Created / weights"]
          .map((t, i) => h("th", { class: i === 1 || (i >= 3 && i <= 6) ? "num" : null }, t)))),
        body),
      note));
  getJSON("/v1/models").then(({ items }) => {
    body.replaceChildren(...items.map(row));
    if (!items.some((m) => !m.builtin)) note.replaceChildren(empty("No custom model yet: train one on the Train page."));
  }).catch((err) => { toast(err.message); note.replaceChildren(empty(err.message)); });
  return () => {};
}
