// Submit page: drop images or one archive, pick the model and options, upload with a progress bar.

import { upload } from "./api.js";
import { modelSelect } from "./modelpicker.js";
import { h, toast } from "./ui.js";

const ARCHIVE = /\.(zip|tar|tgz|tar\.gz)$/i;

function option(name, values, chosen) {
  return h("select", { name, id: `opt-${name}` }, values.map((v) => h("option", { value: v, selected: v === chosen }, v)));
}

export function renderSubmit(root, { model = "" } = {}) {
  let files = [];
  const input = h("input", { type: "file", id: "file-input", multiple: true, hidden: true,
                             accept: "image/*,.zip,.tar,.tgz,.gz" });
  const list = h("ul", { class: "filelist" });
  const summary = h("div", { class: "muted", id: "file-summary" }, "No files chosen");
  const zone = h("label", { class: "dropzone", for: "file-input", id: "dropzone" },
    h("div", { class: "big" }, "Drop images or one archive here"),
    h("div", { class: "muted" }, "or click to choose · JPEG, PNG, WebP, … or .zip / .tar / .tar.gz"),
    input);
  const bar = h("div", { class: "progress big" }, h("span", { class: "ok", style: "width:0%" }));
  const status = h("div", { class: "muted", id: "upload-status" });
  const go = h("button", { class: "btn primary", type: "submit", id: "submit-btn", disabled: true }, "Start job");

  function choose(chosen) {
    files = [...chosen];
    const archive = files.find((f) => ARCHIVE.test(f.name));
    if (archive && files.length > 1) {
      toast("Send either images or one archive, not both; keeping the archive only.");
      files = [archive];
    }
    const bytes = files.reduce((a, f) => a + f.size, 0);
    summary.textContent = files.length ? `${files.length} file(s), ${(bytes / 1e6).toFixed(1)} MB` : "No files chosen";
    list.replaceChildren(...files.slice(0, 200).map((f) => h("li", {}, f.name)));
    go.disabled = !files.length;
  }
  input.addEventListener("change", () => choose(input.files));
  for (const type of ["dragenter", "dragover"]) {
    zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
  }
  for (const type of ["dragleave", "drop"]) zone.addEventListener(type, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => { e.preventDefault(); choose(e.dataTransfer.files); });

  const form = h("form", { class: "stack", onsubmit: async (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const body = new FormData();
    const archive = files.length === 1 && ARCHIVE.test(files[0].name);
    for (const f of files) body.append(archive ? "archive" : "files", f, f.name);
    for (const [k, v] of data.entries()) if (v !== "" && k !== "store_probabilities") body.append(k, v);
    body.append("store_probabilities", data.has("store_probabilities") ? "true" : "false");
    go.disabled = true;
    status.textContent = "Uploading…";
    try {
      const job = await upload(body, (sent, total) => {
        bar.firstChild.style.width = `${(100 * sent) / total}%`;
        status.textContent = `Uploading ${(sent / 1e6).toFixed(1)} / ${(total / 1e6).toFixed(1)} MB`;
      });
      toast(`Job ${job.id.slice(0, 12)} queued`, true);
      location.hash = `#/jobs/${job.id}`;
    } catch (err) {
      status.textContent = "";
      toast(err.message);
      go.disabled = false;
    }
  } },
    h("div", { class: "card stack" }, zone, summary, list),
    h("div", { class: "card" },
      h("h2", {}, "Options"),
      h("div", { class: "row" },
        h("label", { class: "field" }, "Model", modelSelect("model", model)),
        h("label", { class: "field" }, "Top-k", h("input", { name: "top_k", type: "number", min: 1, max: 20, value: 5, style: "width:80px" })),
        h("label", { class: "field" }, "Precision", option("precision", ["auto", "fp32", "bf16", "fp16", "int8"], "auto")),
        h("label", { class: "field", title: "exact: torchvision's preprocessing bit for bit; fast: reduced-scale JPEG decode, about twice as quick" }, "Decode",
          h("select", { name: "decode", id: "opt-decode" },
            h("option", { value: "", selected: true }, "default (exact with fp32)"),
            h("option", { value: "exact" }, "exact"), h("option", { value: "fast" }, "fast"))),
        h("label", { class: "field", style: "flex:1" }, "Completion webhook (optional)",
          h("input", { name: "callback_url", type: "url", placeholder: "https://example.com/hooks/imagebatch" })),
        h("label", { class: "check" }, h("input", { type: "checkbox", name: "store_probabilities" }), "Store every class probability"))),
    h("div", { class: "card stack" }, bar, h("div", { class: "row" }, go, status)));
  root.append(h("div", { class: "page-head" },
    h("div", {}, h("h1", {}, "New job"), h("div", { class: "sub" }, "Images are stored, queued and classified by the workers."))), form);
  return () => {};
}
