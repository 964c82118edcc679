// Image page: the picture (or what the model looks at), its top-k bars, embedding histogram, statistics, neighbours.

import { builtImageURL, getJSON, showImage } from "./api.js";
import { barChart, binValues, empty, histogram } from "./charts.js";
import { badge, h, num, pct, toast } from "./ui.js";

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function channels(item) {
  if (!item.channel_mean) return "–";
  const names = ["R", "G", "B"];
  const colours = ["#e5534b", "#36c28a", "#4f9dff"];
  return h("div", {}, names.map((n, i) => h("div", {},
    h("span", { class: "swatch", style: `background:${colours[i]}` }),
    `${n} mean ${num(item.channel_mean[i], 3)} · std ${num(item.channel_std[i], 3)}`)));
}

function neighbours(result) {
  if (!result.items.length) return empty("No other finished images with an embedding yet.");
  return h("div", { class: "thumbs", id: "similar" }, result.items.map((n) => {
    const img = h("img", { alt: n.source || "", loading: "lazy" });
    showImage(img, `/v1/jobs/${n.job_id}/images/${n.index}/thumbnail`);
    return h("a", { class: "thumb", href: `#/jobs/${n.job_id}/images/${n.index}`, title: n.source },
      h("div", { class: "pic" }, img),
      h("div", { class: "cap" }, h("div", { class: "label" }, n.top1_label || "–"),
        h("div", { class: "conf" }, `cos ${num(n.similarity, 3)} · ${pct(n.confidence)}`)));
  }));
}

// "What the model looks at": the Grad-CAM overlay of the top-1 class over the model's input crop, in place
// of the picture while the box is ticked; a worker computes it on first request (the API answers 202 till then).
function gradcamToggle(item, picture) {
  const note = h("div", { class: "muted", id: "gradcam-note" });
  const overlay = h("img", { class: "full", alt: `Grad-CAM of ${item.top1_label}`, id: "gradcam-image", hidden: true });
  let loaded = false;
  const box = h("input", { type: "checkbox", id: "gradcam-toggle" });
  box.addEventListener("change", () => {
    picture.hidden = box.checked;
    overlay.hidden = !box.checked;
    note.textContent = box.checked ? `Grad-CAM (last conv block) for "${item.top1_label}" on the model's input crop` : "";
    if (!box.checked || loaded) return;
    loaded = true;
    const path = `/v1/jobs/${item.job_id}/images/${item.index}/gradcam`;
    builtImageURL(path, { format: "overlay" }, () => { note.textContent = "a worker is computing the Grad-CAM map…"; })
      .then((url) => {
        overlay.src = url;
        note.textContent = `Grad-CAM (last conv block) for "${item.top1_label}" on the model's input crop`;
      })
      .catch((e) => { loaded = false; note.textContent = e.message; });
  });
  const toggle = h("label", { class: "toggle" }, box, " What the model looks at");
  return [overlay, h("div", { class: "gradcam-row" }, toggle, note)];
}

export function renderImage(root, { id, index }) {
  let alive = true;
  (async () => {
    const item = await getJSON(`/v1/jobs/${id}/images/${index}`);
    if (!alive) return;
    const picture = h("img", { class: "full", alt: item.source, id: "full-image" });
    // The preview link gives the worker's JPEG for formats browsers cannot show (TIFF, ...), else the original.
    showImage(picture, item.links.preview, (e) => picture.replaceWith(empty(e.message)));
    const topk = (item.top_k || []).map((t) => ({ label: t.label, value: t.probability }));
    const similarBox = h("div", { class: "card" }, h("h2", {}, "Similar images (cosine on embeddings)"), h("div", { class: "muted" }, "searching…"));
    const scope = h("select", { "aria-label": "similarity scope" },
      h("option", { value: "job" }, "this job"), h("option", { value: "model" }, `all ${item.model} jobs`));
    const loadSimilar = () => getJSON(item.links.similar, { k: 12, scope: scope.value })
      .then((r) => similarBox.replaceChildren(h("div", { class: "page-head" }, h("h2", {}, "Similar images (cosine on embeddings)"), scope), neighbours(r)))
      .catch((e) => similarBox.replaceChildren(h("h2", {}, "Similar images"), empty(e.message)));
    scope.addEventListener("change", loadSimilar);
    const embedding = item.embedding ? binValues(item.embedding, 48) : null;
    root.replaceChildren(
      h("div", { class: "page-head" }, h("div", {},
        h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Jobs"), " / ", h("a", { href: `#/jobs/${id}` }, id.slice(0, 12)), ` / image ${index}`),
        h("h1", {}, item.source, " ", badge(item.status)),
        h("div", { class: "sub" }, item.top1_label ? `${item.top1_label} · ${pct(item.confidence)}` : (item.error ? `${item.error.category}: ${item.error.message}` : item.status)))),
      h("div", { class: "stack" },
        h("div", { class: "hero" },
          h("div", { class: "card" }, picture, item.status === "ok" ? gradcamToggle(item, picture) : null),
          h("div", { class: "stack" },
            h("div", { class: "card", id: "topk" }, h("h2", {}, `Top-${topk.length || "k"} predictions`),
              barChart(topk, { title: "top-k probabilities", max: 1, format: (v) => pct(v) })),
            h("div", { class: "grid-2" },
              h("div", { class: "card" }, h("h2", {}, "Uncertainty"), kv([
                ["confidence", pct(item.confidence)], ["top-5 mean", pct(item.top5_mean)],
                ["margin top1−top2", num(item.margin, 4)], ["entropy", item.entropy == null ? "–" : `${num(item.entropy, 3)} nats`]])),
              h("div", { class: "card" }, h("h2", {}, "Image"), kv([
                ["size", item.width ? `${item.width} × ${item.height}` : "–"], ["mode", item.mode || "–"],
                ["format", item.format || "–"], ["channels", channels(item)]]))))),
        h("div", { class: "card" }, h("h2", {}, `Embedding values (${item.embedding ? item.embedding.length : 0}-d, penultimate layer)`),
          embedding ? histogram(embedding.edges, embedding.counts, { title: "embedding histogram", cls: "alt", width: 1180, height: 230, xFormat: (v) => v.toFixed(2) })
            : empty("No embedding for this image.")),
        similarBox));
    if (item.embedding) loadSimilar(); else similarBox.replaceChildren(h("h2", {}, "Similar images"), empty("No embedding for this image."));
  })().catch((err) => { toast(err.message); root.replaceChildren(empty(err.message)); });
  return () => { alive = false; };
}
