// Model page: versions, the training curves, confusion heatmap and per-class scores, evaluate, delete.

import { downloadBuilt, getJSON, send, upload } from "./api.js";
import { empty } from "./charts.js";
import { curves, scores } from "./scores.js";
import { FINAL, badge, h, num, pct, progressBar, stat, toast, when } from "./ui.js";

const ARCHIVE = /\.(zip|tar|tgz|tar\.gz)$/i;

async function remove(target, fallback, problem) {
  if (!confirm(`Delete ${target} and its weights? Jobs that used it keep their results.`)) return;
  try {
    await send("DELETE", `/v1/models/${target}`);
    toast(`Deleted ${target}`, true);
    // Deleting the latest version from #/models/<name> stays on that hash: show the new latest.
    if (location.hash === fallback) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = fallback;
  } catch (err) {
    problem.textContent = err.message;  // 409: a queued or running job uses it; the API says which
    problem.hidden = false;
    toast(err.message);
  }
}

// A worker builds the file on first request (202 meanwhile); the button says so until it is saved.
async function exportModel(m, format, button) {
  const label = button.textContent;
  button.disabled = true;
  try {
    await downloadBuilt(`/v1/models/${m.ref}/export`, { format }, () => { button.textContent = `${label}: building…`; });
  } catch (err) {
    toast(err.message);
  }
  button.textContent = label;
  button.disabled = false;
}

function header(m, problem) {
  const what = m.builtin ? `built-in · ${m.weights} · ${m.num_classes} ImageNet classes`
    : `${m.base_model} · ${m.mode} · ${m.num_classes} classes: ${m.classes.slice(0, 12).join(", ")}${m.num_classes > 12 ? ", …" : ""}`;
  const others = m.versions.length > 1;
  return h("div", { class: "page-head" },
    h("div", {},
      h("div", { class: "crumbs" }, h("a", { href: "#/models" }, "Models"), " / ", m.ref),
      h("h1", {}, m.builtin ? m.name : `${m.name} v${m.version} `, m.latest && !m.builtin ? h("span", { class: "badge ok" }, "latest") : null),
      h("div", { class: "sub", id: "model-what" }, what),
      problem),
    h("div", { class: "row" },
      h("a", { class: "btn primary", id: "classify-with", href: `#/submit?model=${m.ref}` }, "Classify with it"),
      ["onnx", "torchscript"].map((format) => h("button", { class: "btn", id: `export-${format}`, title: `download ${m.ref} as a ${format} file`,
        onclick: (e) => exportModel(m, format, e.currentTarget) }, format === "onnx" ? "Export ONNX" : "Export TorchScript")),
      !m.builtin && h("button", { class: "btn danger", id: "delete-version",
        onclick: () => remove(m.ref, others ? `#/models/${m.name}` : "#/models", problem) }, "Delete this version"),
      !m.builtin && others && h("button", { class: "btn danger", id: "delete-model",
        onclick: () => remove(m.name, "#/models", problem) }, "Delete every version")));
}

function summary(m) {
  const s = m.metrics || {};
  return h("div", { class: "card" }, h("div", { class: "stats" },
    stat("val. accuracy", pct(s.val_accuracy)), stat("best epoch", s.best_epoch ?? "–"), stat("top-5 (val.)", pct(s.top5_accuracy)),
    stat("macro F1 (val.)", num(s.macro_f1, 3)), stat("images (val.)", s.val_count ?? "–"),
    h("div", { class: "stat", title: m.weights_sha256 }, h("div", { class: "k" }, "weights SHA-256"),
      h("div", { class: "v mono", style: "font-size:0.95rem" }, `${m.weights_sha256.slice(0, 16)}…`))));
}

function versions(m) {
  return h("div", { class: "card" }, h("h2", {}, "Versions"),
    h("table", { class: "compact", id: "versions-table" },
      h("thead", {}, h("tr", {}, ["Version", "Created", "Val. acc.", "Training job"].map((t) => h("th", {}, t)))),
      h("tbody", {}, m.versions.map((v) => h("tr", { dataset: { ref: v.ref }, class: v.ref === m.ref ? "current" : null,
        onclick: () => { location.hash = `#/models/${v.ref}`; } },
      h("td", {}, h("a", { href: `#/models/${v.ref}` }, v.ref), v.latest ? " (latest)" : ""), h("td", {}, when(v.created_at)),
      h("td", {}, pct(v.metrics?.val_accuracy)),
      h("td", {}, v.training_job_id ? h("a", { class: "mono", href: `#/training/${v.training_job_id}`, onclick: (e) => e.stopPropagation() },
        v.training_job_id.slice(0, 12)) : "–"))))));
}

// The validation split's scores (best epoch) or the latest evaluation's, chosen by a select.
function scoreCard(m) {
  const sources = [];
  if (m.latest_evaluation?.metrics) sources.push([`evaluation ${m.latest_evaluation.id.slice(0, 12)} (${when(m.latest_evaluation.created_at)})`, m.latest_evaluation.metrics]);
  if (m.evaluation) sources.push(["validation split, best epoch", m.evaluation]);
  if (!sources.length) return null;
  const body = h("div", { id: "model-scores" }, scores(sources[0][1]));
  const pick = h("select", { id: "scores-source", "aria-label": "scores of", onchange: () => body.replaceChildren(scores(sources[pick.value][1])) },
    sources.map(([label], i) => h("option", { value: i }, label)));
  return h("div", { class: "card" }, h("div", { class: "page-head", style: "margin-bottom:12px" }, h("h2", {}, "Scores"), pick), body);
}

function watchEvaluation(id, box) {
  const tick = async () => {
    if (!box.isConnected) return;
    try {
      const ev = await getJSON(`/v1/evaluations/${id}`);
      const done = ev.counts.total - ev.counts.pending;
      box.replaceChildren(...[
        h("div", { class: "row" }, h("strong", {}, `Evaluation ${id.slice(0, 12)} `), badge(ev.state),
          h("a", { href: `#/jobs/${id}` }, "per-image results →"),
          ev.counts.failed ? h("span", { class: "danger-text" }, `${ev.counts.failed} image(s) failed`) : null),
        progressBar(ev.counts, true), ev.error && h("p", { class: "danger-text" }, ev.error),
        FINAL.has(ev.state) ? scores(ev.metrics) : h("p", { class: "muted" }, `${done} / ${ev.counts.total} images classified…`),
      ].filter(Boolean));
      if (FINAL.has(ev.state)) return;
    } catch (err) {
      toast(err.message);
    }
    setTimeout(tick, 2000);
  };
  tick();
}

function evaluateCard(m) {
  const input = h("input", { type: "file", id: "eval-archive", accept: ".zip,.tar,.tgz,.gz" });
  const status = h("span", { class: "muted", id: "eval-status" });
  const result = h("div", { class: "stack", id: "eval-result" });
  const go = h("button", { class: "btn", id: "eval-btn", type: "button", onclick: async () => {
    const file = input.files[0];
    if (!file || !ARCHIVE.test(file.name)) { toast("Choose a .zip, .tar or .tar.gz archive: one folder per class"); return; }
    const body = new FormData();
    body.append("model", m.ref);
    body.append("archive", file, file.name);
    go.disabled = true;
    try {
      const ev = await upload(body, (sent, total) => { status.textContent = `Uploading ${Math.round((100 * sent) / total)}%`; }, "/v1/evaluations");
      status.textContent = "";
      watchEvaluation(ev.id, result);
    } catch (err) {
      status.textContent = "";
      toast(err.message);
    }
    go.disabled = false;
  } }, "Evaluate");
  const names = m.builtin ? "ImageNet class names such as tabby" : "the model's classes";
  return h("div", { class: "card stack", id: "evaluate" }, h("h2", {}, `Evaluate ${m.ref} on a labelled set`),
    h("div", { class: "hint" }, `An ImageFolder archive (.zip, .tar, .tar.gz): one folder per class, named after ${names}. `
      + "Top-1/top-5 accuracy, per-class scores and the confusion matrix; the images are a job of their own."),
    h("div", { class: "row" }, input, go, status), result);
}

export function renderModel(root, { ref }) {
  getJSON(`/v1/models/${ref}`).then((m) => {
    const problem = h("p", { class: "danger-text", id: "model-problem", hidden: true });
    const history = m.history.length
      ? [h("div", { class: "row" }, h("h2", { style: "margin:0" }, "Training curves"),
        h("a", { href: `#/training/${m.training_job_id}` }, "training job →")), curves(m.history, m.history.length)]
      : [];
    root.replaceChildren(header(m, problem), h("div", { class: "stack" },
      m.builtin ? null : summary(m), ...history, scoreCard(m), evaluateCard(m), m.builtin ? null : versions(m)));
  }).catch((err) => { toast(err.message); root.replaceChildren(empty(err.message)); });
  return () => {};
}
