// Training-job page: state and progress, live loss and accuracy curves, epochs, the dataset report, cancel.

import { getJSON, send } from "./api.js";
import { empty } from "./charts.js";
import { curves, epochTable } from "./scores.js";
import { FINAL, badge, h, num, pct, stat, toast } from "./ui.js";

function header(job) {
  const o = job.options;
  const model = job.model && `${job.model.name}:${job.model.version}`;
  return [
    h("div", {},
      h("div", { class: "crumbs" }, h("a", { href: "#/train" }, "Train"), " / ", job.id),
      h("h1", {}, `Training ${job.name} `, badge(job.state)),
      h("div", { class: "sub", id: "training-options" },
        `${job.base_model} · ${job.mode} · ${o.epochs} epochs · ${o.image_size} px · batch ${o.batch_size} · `
        + `${job.classes.length} classes · ${job.image_count} images`)),
    h("div", { class: "row" },
      model && h("a", { class: "btn primary", id: "model-link", href: `#/models/${model}` }, `Model ${model} →`),
      !FINAL.has(job.state) && h("button", { class: "btn danger", id: "cancel-training", onclick: () =>
        send("POST", `/v1/training-jobs/${job.id}/cancel`).then(() => toast("Cancel requested: it stops at the next batch", true))
          .catch((e) => toast(e.message)) }, "Cancel")),
  ];
}

function phase(job) {
  if (job.state === "queued") return "Waiting for a worker on the train queue…";
  if (job.state === "running" && !job.dataset) return "Checking every image (the data step)…";
  if (job.state === "running") return `Training epoch ${job.epochs.length + 1} of ${job.options.epochs}…`;
  if (job.state === "cancelling") return "Stopping at the next batch…";
  return null;
}

function live(job) {
  const last = job.epochs[job.epochs.length - 1];
  const note = phase(job);
  return h("div", { class: "card", id: "training-live" }, h("h2", {}, "Progress"),
    h("div", { class: "progress big", role: "progressbar", "aria-valuenow": Math.round(100 * job.progress) },
      h("span", { class: "ok", style: `width:${100 * job.progress}%` })),
    h("div", { class: "stats", style: "margin-top:14px" },
      stat("epochs", `${job.epochs.length} / ${job.options.epochs}`, "stat-epochs"),
      stat("best val. acc.", job.best ? `${pct(job.best.val_accuracy)} (ep. ${job.best.epoch})` : "–", "stat-best"),
      stat("train loss", last ? num(last.train_loss, 4) : "–"), stat("val. loss", last ? num(last.val_loss, 4) : "–"),
      stat("s / epoch", last ? num(last.seconds, 1) : "–"),
      stat("attempts", job.attempts > 1 ? `${job.attempts} (resumed)` : String(job.attempts))),
    note && h("p", { class: "muted" }, note),
    job.error && h("p", { class: "danger-text", id: "training-error" }, job.error));
}

function classCounts(report) {
  const rows = Object.entries(report.counts).map(([name, c]) => ({ name, ...c, total: c.train + c.val }));
  const most = Math.max(1, ...rows.map((r) => r.total));
  return h("table", { class: "compact", id: "class-counts" },
    h("thead", {}, h("tr", {}, ["Class", "Train", "Val.", "Total", ""].map((t, i) => h("th", { class: i && i < 4 ? "num" : null }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", { dataset: { class: r.name } },
      h("td", {}, r.name), h("td", { class: "num" }, String(r.train)), h("td", { class: "num" }, String(r.val)),
      h("td", { class: "num" }, String(r.total)),
      h("td", { style: "width:40%" }, h("div", { class: "progress" }, h("span", { class: "ok", style: `width:${(100 * r.total) / most}%` })))))));
}

function skippedTable(report) {
  const rows = [
    ...(report.skipped || []).map((s) => [s.rel || s.source || "?", s.label || "", s.category || "", s.message || ""]),
    ...(report.upload_skipped || []).map((s) => [s.source, "", "not an image", s.reason]),
  ];
  if (!rows.length) return h("p", { class: "muted" }, "No image was skipped.");
  return h("table", { class: "compact", id: "skipped-images" },
    h("thead", {}, h("tr", {}, ["File", "Class", "Category", "Why"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows.map(([file, label, category, why]) =>
      h("tr", {}, h("td", { class: "mono" }, file), h("td", {}, label), h("td", {}, h("span", { class: "badge error" }, category)),
        h("td", { class: "muted" }, why)))));
}

function dataset(job) {
  const report = job.dataset;
  if (!report) {
    const why = FINAL.has(job.state) ? "The job ended before its data step reported."
      : "The data step reports here once a worker has checked every image.";
    return h("div", { class: "card" }, h("h2", {}, "Dataset"), empty(why));
  }
  const warnings = report.warnings || [];
  return h("div", { class: "card stack", id: "dataset-report" }, h("h2", {}, "Dataset"),
    h("div", { class: "row muted" }, `${report.classes.length} classes · imbalance ratio ${num(report.imbalance_ratio, 2)} (largest / smallest class)`),
    warnings.length ? h("ul", { class: "warning", id: "dataset-warnings" }, warnings.map((w) => h("li", {}, `⚠ ${w}`))) : null,
    classCounts(report),
    h("h3", {}, "Skipped images"), skippedTable(report),
    report.ignored && report.ignored.length ? h("p", { class: "muted" }, `Ignored (not in a class folder): ${report.ignored.join(", ")}`) : null);
}

function record(job, open) {
  if (!job.record) return null;
  return h("details", { class: "card", id: "training-record", open },
    h("summary", {}, h("strong", {}, "Training record"), h("span", { class: "muted" }, " · hyper-parameters, seed, split, dataset SHA-256, versions")),
    h("pre", { class: "record" }, JSON.stringify(job.record, null, 2)));
}

export function renderTraining(root, { id }) {
  let stopped = false;
  let timer = null;
  let shown = "";
  async function tick() {
    try {
      const job = await getJSON(`/v1/training-jobs/${id}`);
      if (stopped) return;
      // Redrawn only when something changed: an open record or a hovered point stays put between polls.
      const seen = JSON.stringify([job.state, job.epochs, job.dataset != null, job.model, job.error]);
      if (seen !== shown) {
        shown = seen;
        const open = Boolean(root.querySelector("#training-record[open]"));
        const epochs = !FINAL.has(job.state) || job.epochs.length > 0;  // none will come: no empty charts
        root.replaceChildren(h("div", { class: "page-head" }, ...header(job)),
          h("div", { class: "stack" }, live(job), epochs && curves(job.epochs, job.options.epochs),
            epochs && h("div", { class: "card" }, h("h2", {}, "Epochs"), epochTable(job.epochs, job.best)),
            dataset(job), record(job, open)));
      }
      if (FINAL.has(job.state)) return;
    } catch (err) {
      toast(err.message);
      if (err.status === 404) { root.replaceChildren(empty(err.message)); return; }  // deleted, or never was
    }
    if (!stopped) timer = setTimeout(tick, 2000);
  }
  root.append(h("div", { class: "muted" }, "loading…"));
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
