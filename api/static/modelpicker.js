// The models a tenant can classify with, from GET /v1/models: a <select> of built-in models, then each custom
// model by name (its latest version) and by name:version (pinned).

import { getJSON } from "./api.js";
import { h, pct, toast } from "./ui.js";

function customOptions(versions, chosen) {
  const latest = versions.find((m) => m.latest) || versions[0];
  const score = (m) => (m.metrics?.val_accuracy == null ? "" : ` · val. ${pct(m.metrics.val_accuracy)}`);
  return h("optgroup", { label: `${latest.name} (${latest.base_model}, ${latest.num_classes} classes)` },
    h("option", { value: latest.name, selected: chosen === latest.name }, `${latest.name} — latest (v${latest.version})`),
    versions.map((m) => h("option", { value: m.ref, selected: chosen === m.ref }, `${m.ref}${score(m)}`)));
}

// Filled in once the list arrives; `chosen` (a name or name:version) is selected when present.
export function modelSelect(name, chosen = "") {
  const select = h("select", { name, id: `opt-${name}`, disabled: true }, h("option", { value: "" }, "loading models…"));
  getJSON("/v1/models").then(({ items }) => {
    const builtin = items.filter((m) => m.builtin);
    const custom = new Map();
    for (const m of items.filter((m) => !m.builtin)) custom.set(m.name, [...(custom.get(m.name) || []), m]);
    const first = chosen || (builtin[0] && builtin[0].name);
    select.replaceChildren(
      h("optgroup", { label: "Built-in (ImageNet, 1000 classes)" },
        builtin.map((m) => h("option", { value: m.name, selected: m.name === first }, m.name))),
      ...[...custom.values()].map((versions) => customOptions(versions, first)));
    select.disabled = false;
  }).catch((err) => {
    select.replaceChildren(h("option", { value: "" }, "models unavailable"));
    toast(err.message);
  });
  return select;
}
