// Train page: upload a labelled ImageFolder archive with the training options, and the list of training jobs.
// The option fields are built from the API's own OpenAPI schema (core/training.py's TrainingOptions), so
// their defaults, limits and help texts have one definition.

import { getJSON, upload } from "./api.js";
import { badge, h, pct, toast, when } from "./ui.js";

const ARCHIVE = /\.(zip|tar|tgz|tar\.gz)$/i;
const MAIN = ["name", "base_model", "mode", "epochs"];
let optionsSchema = null;

async function trainingOptions() {
  if (!optionsSchema) {
    const spec = await getJSON("/openapi.json");
    const body = spec.paths["/v1/training-jobs"].post.requestBody.content["multipart/form-data"].schema;
    optionsSchema = Object.fromEntries(Object.entries(body.properties).filter(([name]) => name !== "archive"));
  }
  return optionsSchema;
}

function control(name, prop, required) {
  const id = `train-${name}`;
  if (prop.enum) {
    return h("select", { name, id }, prop.enum.map((v) => h("option", { value: v, selected: v === prop.default }, v)));
  }
  if (prop.type === "integer" || prop.type === "number") {
    return h("input", {
      name, id, type: "number", step: prop.type === "integer" ? 1 : "any", required,
      min: prop.minimum ?? prop.exclusiveMinimum, max: prop.maximum ?? prop.exclusiveMaximum,
      placeholder: prop.default == null ? "" : String(prop.default),
    });
  }
  return h("input", { name, id, required, autocomplete: "off", placeholder: prop.default == null ? "" : String(prop.default) });
}

function field(name, prop, required) {
  if (prop.type === "boolean") {
    return h("label", { class: "check", title: prop.description || "" },
      h("input", { type: "checkbox", name, id: `train-${name}`, checked: prop.default === true }), prop.title);
  }
  return h("label", { class: "field", title: prop.description || "" }, prop.title, control(name, prop, required));
}

// Text and number fields only when filled in (the API fills in the defaults); check boxes always.
function formBody(form, schema, archive) {
  const body = new FormData();
  for (const [name, prop] of Object.entries(schema)) {
    const input = form.elements[name];
    if (prop.type === "boolean") body.append(name, input.checked ? "true" : "false");
    else if (input.value.trim() !== "") body.append(name, input.value.trim());
  }
  body.append("archive", archive, archive.name);
  return body;
}

function archiveZone(onChoose) {
  const input = h("input", { type: "file", id: "train-archive", hidden: true, accept: ".zip,.tar,.tgz,.gz" });
  const zone = h("label", { class: "dropzone", for: "train-archive", id: "train-dropzone" },
    h("div", { class: "big" }, "Drop a labelled archive here"),
    h("div", { class: "muted" }, "or click to choose · .zip / .tar / .tar.gz in ImageFolder layout: one folder per class"),
    input);
  const choose = (file) => {
    if (!file) return;
    if (!ARCHIVE.test(file.name)) { toast(`${file.name}: send a .zip, .tar or .tar.gz archive`); return; }
    onChoose(file);
  };
  input.addEventListener("change", () => choose(input.files[0]));
  for (const type of ["dragenter", "dragover"]) zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); choose(e.dataTransfer.files[0]); });
  return zone;
}

function trainForm(schema) {
  let archive = null;
  const summary = h("div", { class: "muted", id: "train-file" }, "No archive chosen");
  const bar = h("div", { class: "progress big" }, h("span", { class: "ok", style: "width:0%" }));
  const status = h("div", { class: "muted", id: "train-status" });
  const go = h("button", { class: "btn primary", type: "submit", id: "train-btn", disabled: true }, "Start training");
  const zone = archiveZone((file) => {
    archive = file;
    summary.textContent = `${file.name}, ${(file.size / 1e6).toFixed(2)} MB`;
    go.disabled = false;
  });
  const advanced = Object.keys(schema).filter((name) => !MAIN.includes(name));
  const form = h("form", { class: "stack", id: "train-form", onsubmit: (e) => {
    e.preventDefault();
    send(formBody(form, schema, archive), { go, bar, status });
  } },
    h("div", { class: "card stack" }, zone, summary),
    h("div", { class: "card stack" },
      h("h2", {}, "Model and run"),
      h("div", { class: "fields" }, MAIN.map((name) => field(name, schema[name], name === "name"))),
      h("div", { class: "hint" }, schema.mode.description),
      h("details", { class: "advanced", id: "train-advanced" }, h("summary", {}, "Advanced: hyper-parameters"),
        h("div", { class: "fields" }, advanced.map((name) => field(name, schema[name], false))))),
    h("div", { class: "card stack" }, bar, h("div", { class: "row" }, go, status)));
  return form;
}

// Upload with progress, then the new training job's page; a refusal (422 naming the field) is toasted.
async function send(body, { go, bar, status }) {
  go.disabled = true;
  status.textContent = "Uploading…";
  try {
    const job = await upload(body, (sent, total) => {
      bar.firstChild.style.width = `${(100 * sent) / total}%`;
      status.textContent = `Uploading ${(sent / 1e6).toFixed(2)} / ${(total / 1e6).toFixed(2)} MB`;
    }, "/v1/training-jobs");
    toast(`Training job ${job.id.slice(0, 12)} queued`, true);
    location.hash = `#/training/${job.id}`;
  } catch (err) {
    status.textContent = "";
    toast(err.message);
    go.disabled = false;
  }
}

function jobRow(job) {
  const done = job.epochs.length;
  const planned = job.options.epochs;
  return h("tr", { onclick: () => { location.hash = `#/training/${job.id}`; }, dataset: { job: job.id } },
    h("td", {}, h("a", { href: `#/training/${job.id}`, class: "mono" }, job.id.slice(0, 12))),
    h("td", {}, job.name), h("td", {}, badge(job.state)), h("td", {}, `${job.base_model} · ${job.mode}`),
    h("td", {}, h("div", { class: "progress" }, h("span", { class: "ok", style: `width:${100 * job.progress}%` }))),
    h("td", { class: "num" }, `${done}/${planned}`),
    h("td", { class: "num" }, job.best ? pct(job.best.val_accuracy) : "–"),
    h("td", {}, job.model ? h("a", { href: `#/models/${job.model.name}:${job.model.version}`, onclick: (e) => e.stopPropagation() },
      `${job.model.name}:${job.model.version}`) : "–"),
    h("td", { class: "muted" }, when(job.timestamps.created)));
}

function jobList() {
  const body = h("tbody");
  const note = h("div", { class: "muted" });
  const table = h("table", { id: "training-table" },
    h("thead", {}, h("tr", {}, ["Job", "Model name", "State", "Base · mode", "Progress", "Epochs", "Best val. acc.", "Model", "Created"]
      .map((t, i) => h("th", { class: i === 5 || i === 6 ? "num" : null }, t)))), body);
  async function refresh() {
    const page = await getJSON("/v1/training-jobs", { limit: 50 });
    body.replaceChildren(...page.items.map(jobRow));
    note.textContent = page.items.length ? "" : "No training jobs yet.";
  }
  return { card: h("div", { class: "card" }, h("h2", {}, "Training jobs"), table, note), refresh };
}

export function renderTrain(root) {
  const list = jobList();
  const formBox = h("div", {}, h("div", { class: "muted" }, "loading the training options…"));
  root.append(h("div", { class: "page-head" }, h("div", {}, h("h1", {}, "Train a model"),
    h("div", { class: "sub" }, "Train, fine-tune or transfer a ResNet on your labelled images; it becomes a model you can classify with."))),
  h("div", { class: "stack" }, formBox, list.card));
  trainingOptions().then((schema) => formBox.replaceChildren(trainForm(schema)))
    .catch((err) => { toast(err.message); formBox.replaceChildren(h("div", { class: "empty" }, err.message)); });
  let timer = null;
  let stopped = false;
  const tick = () => list.refresh().catch((err) => toast(err.message))
    .finally(() => { if (!stopped) timer = setTimeout(tick, 2000); });
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}
