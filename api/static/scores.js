// Training curves and evaluation scores: what the training-job page and the model page both draw.

import { empty, heatmap, lineChart } from "./charts.js";
import { h, num, pct, stat } from "./ui.js";

const percent = (v) => `${Math.round(100 * v)}%`;

// Loss and accuracy per epoch, train and validation, on an x axis as long as the planned epochs.
export function curves(epochs, planned) {
  const series = (key) => [
    { name: "train", cls: "train", points: epochs.map((e) => [e.epoch, e[`train_${key}`]]) },
    { name: "validation", cls: "val", points: epochs.map((e) => [e.epoch, e[`val_${key}`]]) },
  ];
  const xMax = Math.max(planned || 1, epochs.length);
  return h("div", { class: "grid-2" },
    h("div", { class: "card", id: "loss-card" }, h("h2", {}, "Loss"),
      lineChart(series("loss"), { title: "loss per epoch", xMax, yMin: 0 })),
    h("div", { class: "card", id: "accuracy-card" }, h("h2", {}, "Accuracy"),
      lineChart(series("accuracy"), { title: "accuracy per epoch", xMax, yMin: 0, yMax: 1, yFormat: percent, tipFormat: pct })));
}

// One row per finished epoch; the best validation accuracy is starred.
export function epochTable(epochs, best) {
  if (!epochs.length) return empty("No epoch has finished yet.");
  const head = ["Epoch", "Train loss", "Train acc.", "Val. loss", "Val. acc.", "Seconds"];
  return h("table", { class: "compact", id: "epochs-table" },
    h("thead", {}, h("tr", {}, head.map((t, i) => h("th", { class: i ? "num" : null }, t)))),
    h("tbody", {}, epochs.map((e) => h("tr", { dataset: { epoch: e.epoch } },
      h("td", {}, String(e.epoch), best && best.epoch === e.epoch ? " ★" : ""),
      h("td", { class: "num" }, num(e.train_loss, 4)), h("td", { class: "num" }, pct(e.train_accuracy)),
      h("td", { class: "num" }, num(e.val_loss, 4)), h("td", { class: "num" }, pct(e.val_accuracy)),
      h("td", { class: "num" }, num(e.seconds, 1))))));
}

function perClassTable(rows) {
  const head = ["Class", "Precision", "Recall", "F1", "Support"];
  return h("table", { class: "compact per-class" },
    h("thead", {}, h("tr", {}, head.map((t, i) => h("th", { class: i ? "num" : null }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", { dataset: { class: r.class } },
      h("td", {}, r.class), h("td", { class: "num" }, num(r.precision, 3)), h("td", { class: "num" }, num(r.recall, 3)),
      h("td", { class: "num" }, num(r.f1, 3)), h("td", { class: "num" }, String(r.support))))));
}

// Headline figures, the confusion-matrix heatmap (true class by row) and the per-class table of one metrics object.
export function scores(metrics) {
  if (!metrics) return empty("No scores yet: no image has been processed.");
  const matrix = metrics.confusion_matrix;
  return h("div", { class: "stack" },
    h("div", { class: "stats" },
      stat("images", String(metrics.count)), stat("top-1 accuracy", pct(metrics.top1_accuracy)),
      stat("top-5 accuracy", pct(metrics.top5_accuracy)), stat("macro F1", num(metrics.macro_avg?.f1, 3))),
    h("div", { class: "grid-2" },
      h("div", {}, h("h3", {}, "Confusion matrix"), heatmap(matrix.classes, matrix.rows)),
      h("div", {}, h("h3", {}, "Per class"), perClassTable(metrics.per_class))));
}
