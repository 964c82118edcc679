// The dashboard's entry point: hash routes to views, the API-key box and the theme toggle.

import { apiKey } from "./api.js";
import { renderImage } from "./image.js";
import { renderJob } from "./job.js";
import { renderJobs } from "./jobs.js";
import { renderModel } from "./model.js";
import { renderModels } from "./models.js";
import { renderSubmit } from "./submit.js";
import { renderTrain } from "./train.js";
import { renderTraining } from "./training.js";
import { toast } from "./ui.js";

const ROUTES = [
  [/^#\/jobs\/([0-9a-f]+)\/images\/(\d+)$/, (m) => ["jobs", renderImage, { id: m[1], index: m[2] }]],
  [/^#\/jobs\/([0-9a-f]+)$/, (m) => ["jobs", renderJob, { id: m[1] }]],
  [/^#\/submit(?:\?model=([\w.:-]+))?$/, (m) => ["submit", renderSubmit, { model: m[1] }]],
  [/^#\/train$/, () => ["train", renderTrain, {}]],
  [/^#\/training\/([0-9a-f]+)$/, (m) => ["train", renderTraining, { id: m[1] }]],
  [/^#\/models$/, () => ["models", renderModels, {}]],
  [/^#\/models\/([\w.:-]+)$/, (m) => ["models", renderModel, { ref: m[1] }]],
  [/^(#\/?)?$/, () => ["jobs", renderJobs, {}]],
];

let cleanup = () => {};

function route() {
  const hash = location.hash;
  const found = ROUTES.map(([re, make]) => [hash.match(re), make]).find(([m]) => m);
  const [nav, view, params] = found ? found[1](found[0]) : ["jobs", renderJobs, {}];
  cleanup();
  const root = document.getElementById("view");
  root.replaceChildren();
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
  cleanup = view(root, params) || (() => {});
  window.scrollTo(0, 0);
}

function showKeyState() {
  const status = document.getElementById("key-status");
  status.textContent = apiKey.get() ? "API key ✓" : "API key";
  status.classList.toggle("set", Boolean(apiKey.get()));
}

function setUpKeyBox() {
  const form = document.getElementById("key-form");
  const input = document.getElementById("api-key");
  input.value = apiKey.get();
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    apiKey.set(input.value.trim());
    form.closest("details").open = false;
    showKeyState();
    toast("API key saved in this browser", true);
    route();
  });
  document.getElementById("key-clear").addEventListener("click", () => {
    apiKey.set("");
    input.value = "";
    showKeyState();
    route();
  });
  showKeyState();
}

document.getElementById("theme-toggle").addEventListener("click", () => {
  const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  localStorage.setItem("imagebatch.theme", next);
});
setUpKeyBox();
window.addEventListener("hashchange", route);
route();
