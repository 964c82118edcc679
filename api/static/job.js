// Job page: live progress and throughput, label/confidence/entropy charts, a filterable thumbnail grid.

import { download, getJSON, send, showImage } from "./api.js";
import { barChart, histogram } from "./charts.js";
import { FINAL, badge, duration, h, num, pct, progressBar, stat, toast } from "./ui.js";

const PAGE = 120;

function thumb(jobId, item) {
  const href = `#/jobs/${jobId}/images/${item.index}`;
  if (item.status !== "ok") {
    const why = item.error ? `${item.error.category}: ${item.error.message}` : item.status;
    const cls = item.status === "error" ? "err" : "wait";
    return h("a", { class: `thumb ${cls}`, href, title: why, dataset: { index: item.index } },
      h("div", { class: "pic" }, why), h("div", { class: "cap" }, h("div", { class: "label" }, item.source)));
  }
  const img = h("img", { alt: item.source, loading: "lazy" });
  showImage(img, `/v1/jobs/${jobId}/images/${item.index}/thumbnail`);
  // An evaluation's image carries its true label: shown under the prediction, a miss outlined.
  const labelled = item.true_label != null;
  const miss = labelled && item.true_label !== item.top1_label;
  return h("a", { class: `thumb${miss ? " miss" : ""}`, href, title: item.source, dataset: { index: item.index } },
    h("div", { class: "pic" }, img),
    h("div", { class: "confbar" }, h("span", { style: `width:${100 * item.confidence}%` })),
    h("div", { class: "cap" }, h("div", { class: "label" }, item.top1_label),
      labelled && h("div", { class: "truth" }, `true: ${item.true_label}`),
      h("div", { class: "conf" }, `${pct(item.confidence)} · H ${num(item.entropy, 2)}`)));
}

const SORTS = {
  index: (a, b) => a.index - b.index,
  "confidence-desc": (a, b) => (b.confidence ?? -1) - (a.confidence ?? -1),
  "confidence-asc": (a, b) => (a.confidence ?? 2) - (b.confidence ?? 2),
  "entropy-desc": (a, b) => (b.entropy ?? -1) - (a.entropy ?? -1),
};

function filterBar(onChange) {
  const field = (label, input) => h("label", { class: "field" }, label, input);
  const inputs = {
    label: h("input", { placeholder: "exact top-1 label", id: "f-label" }),
    min_confidence: h("input", { type: "number", step: "0.05", min: 0, max: 1, style: "width:90px" }),
    max_confidence: h("input", { type: "number", step: "0.05", min: 0, max: 1, style: "width:90px" }),
    max_entropy: h("input", { type: "number", step: "0.1", min: 0, style: "width:90px" }),
    status: h("select", {}, ["", "ok", "error", "pending", "cancelled"].map((s) => h("option", { value: s }, s || "any"))),
    sort: h("select", { id: "f-sort" }, Object.keys(SORTS).map((s) => h("option", { value: s }, s.replace("-", " ")))),
    correct: h("select", { id: "f-correct" }, [["", "any"], ["false", "misclassified"], ["true", "correct"]]
      .map(([value, text]) => h("option", { value }, text))),
  };
  const values = () => Object.fromEntries(Object.entries(inputs).map(([k, el]) => [k, el.value.trim()]));
  for (const el of Object.values(inputs)) el.addEventListener("change", () => onChange(values()));
  const bar = h("div", { class: "filters" },
    field("Label", inputs.label), field("Min conf.", inputs.min_confidence), field("Max conf.", inputs.max_confidence),
    field("Max entropy", inputs.max_entropy), field("Status", inputs.status), field("Sort loaded", inputs.sort));
  const correct = h("label", { class: "field", hidden: true }, "Prediction", inputs.correct);
  bar.append(correct);
  // Only an evaluation's images have a true label to be right or wrong about.
  const labelled = (yes) => { correct.hidden = !yes; };
  return { bar, values, labelled };
}

function header(job, root) {
  const actions = h("div", { class: "row" },
    h("button", { class: "btn", id: "export-csv", onclick: () => download(`/v1/jobs/${job.id}/results.csv`, `${job.id}.csv`).catch((e) => toast(e.message)) }, "Export CSV"),
    h("button", { class: "btn", id: "export-parquet", onclick: () => download(`/v1/jobs/${job.id}/results.parquet`, `${job.id}.parquet`).catch((e) => toast(e.message)) }, "Export Parquet"),
    job.store_probabilities && h("button", { class: "btn", onclick: () => download(`/v1/jobs/${job.id}/results.csv?probabilities=true`, `${job.id}-probabilities.csv`).catch((e) => toast(e.message)) }, "CSV + probabilities"),
    !FINAL.has(job.state) && h("button", { class: "btn danger", onclick: () => send("POST", `/v1/jobs/${job.id}/cancel`).catch((e) => toast(e.message)) }, "Cancel"));
  root.replaceChildren(
    h("div", {}, h("div", { class: "crumbs" }, h("a", { href: "#/" }, "Jobs"), " / ", job.id),
      h("h1", {}, `Job ${job.id.slice(0, 12)} `, badge(job.state)),
      h("div", { class: "sub", id: "job-options" }, `${job.model} · top-${job.top_k} · precision ${job.precision}` + (job.decode ? ` · decode ${job.decode}` : ""))),
    actions);
}

function liveStats(job) {
  const c = job.counts;
  return [
    progressBar(c, true),
    h("div", { class: "stats", style: "margin-top:14px" },
      stat("done", `${c.total - c.pending} / ${c.total}`, "stat-done"), stat("succeeded", c.succeeded),
      stat("failed", c.failed), stat("images/s", job.images_per_second ? job.images_per_second.toFixed(1) : "–"),
      stat("ETA", FINAL.has(job.state) ? "done" : duration(job.eta_seconds)), stat("progress", pct(job.progress))),
    job.error && h("p", { style: "color:var(--danger)" }, job.error),
  ].filter(Boolean);
}

function charts(summary) {
  const labels = summary.labels.map((l) => ({ label: l.label, value: l.count }));
  const more = summary.distinct_labels > labels.length ? ` (top ${labels.length} of ${summary.distinct_labels})` : "";
  return [
    h("div", { class: "card" }, h("h2", {}, `Top-1 labels${more}`), barChart(labels, { title: "top-1 label counts", format: String })),
    h("div", { class: "stack" },
      h("div", { class: "card" }, h("h2", {}, "Confidence (top-1 probability)"),
        histogram(summary.confidence.edges, summary.confidence.counts, { title: "confidence histogram", xFormat: (v) => v.toFixed(2) })),
      h("div", { class: "card" }, h("h2", {}, "Entropy (nats)"),
        histogram(summary.entropy.edges, summary.entropy.counts, { title: "entropy histogram", cls: "alt", xFormat: (v) => v.toFixed(1) }))),
  ];
}

export function renderJob(root, { id }) {
  const head = h("div", { class: "page-head" });
  const live = h("div", { class: "card", id: "live" });
  const chartBox = h("div", { class: "grid-2" });
  const grid = h("div", { class: "thumbs", id: "thumbs" });
  const more = h("button", { class: "btn", hidden: true }, "Load more");
  let items = [], cursor = null, filters = {}, lastState = null, stopped = false, gridDone = -1, gridAt = 0;
  const { bar, labelled } = filterBar((v) => { filters = v; reload(); });

  async function loadPage() {
    const { sort, ...query } = filters;
    const page = await getJSON(`/v1/jobs/${id}/results`, { ...query, limit: PAGE, cursor });
    items = items.concat(page.items);
    cursor = page.next_cursor;
    more.hidden = !cursor;
    items.sort(SORTS[filters.sort || "index"]);
    grid.replaceChildren(...(items.length ? items.map((it) => thumb(id, it)) : [h("div", { class: "empty" }, "No images match.")]));
  }
  function reload() { items = []; cursor = null; loadPage().catch((e) => toast(e.message)); }
  more.addEventListener("click", () => loadPage().catch((e) => toast(e.message)));

  async function tick() {
    if (stopped) return;
    try {
      const job = await getJSON(`/v1/jobs/${id}`);
      if (job.state !== lastState) { header(job, head); labelled(job.kind === "evaluate"); }
      live.replaceChildren(h("h2", {}, "Progress"), ...liveStats(job));
      chartBox.replaceChildren(...charts(await getJSON(`/v1/jobs/${id}/summary`)));
      const changed = job.state !== lastState;
      const done = job.counts.total - job.counts.pending;
      lastState = job.state;
      // The grid follows progress at most every ~6 s: reloading re-fetches what it shows.
      if (changed || (done !== gridDone && Date.now() - gridAt > 6000)) {
        gridDone = done;
        gridAt = Date.now();
        reload();
      }
      if (FINAL.has(job.state)) return;
    } catch (err) {
      toast(err.message);
    }
    timer = setTimeout(tick, 1500);
  }
  let timer = null;
  root.append(head, h("div", { class: "stack" }, live, chartBox,
    h("div", { class: "card" }, h("h2", {}, "Images"), bar, grid, h("div", { class: "row", style: "margin-top:12px" }, more))));
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
