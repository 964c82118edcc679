// Jobs list: state, progress bars and counts, refreshed every two seconds while the page is open.

import { getJSON } from "./api.js";
import { badge, h, progressBar, toast, when } from "./ui.js";

const STATES = ["", "queued", "running", "completed", "failed", "cancelling", "cancelled"];

function row(job) {
  const c = job.counts;
  const open = () => { location.hash = `#/jobs/${job.id}`; };
  return h("tr", { onclick: open, dataset: { job: job.id } },
    h("td", {}, h("a", { href: `#/jobs/${job.id}`, class: "mono" }, job.id.slice(0, 12))),
    h("td", {}, badge(job.state)),
    h("td", {}, job.model_version ? `${job.model}:${job.model_version}` : job.model,
      job.kind === "evaluate" ? h("span", { class: "muted" }, " · evaluation") : null),
    h("td", {}, progressBar(c)),
    h("td", { class: "num" }, `${c.total - c.pending}/${c.total}`),
    h("td", { class: "num" }, c.failed ? h("span", { style: "color:var(--danger)" }, c.failed) : "0"),
    h("td", { class: "num" }, job.images_per_second ? job.images_per_second.toFixed(1) : "–"),
    h("td", { class: "muted" }, when(job.timestamps.created)));
}

export function renderJobs(root) {
  let state = "";
  const body = h("tbody");
  const filter = h("select", { "aria-label": "state", onchange: (e) => { state = e.target.value; refresh(); } },
    STATES.map((s) => h("option", { value: s }, s || "all states")));
  const note = h("span", { class: "muted" });
  root.append(
    h("div", { class: "page-head" },
      h("div", {}, h("h1", {}, "Jobs"), h("div", { class: "sub" }, "Newest first · updates live")),
      h("div", { class: "row" }, filter, h("a", { class: "btn primary", href: "#/submit" }, "New job"))),
    h("div", { class: "card" },
      h("table", { id: "jobs-table" },
        h("thead", {}, h("tr", {}, ["Job", "State", "Model", "Progress", "Done", "Failed", "img/s", "Created"]
          .map((t, i) => h("th", { class: i >= 4 && i <= 6 ? "num" : null }, t)))),
        body),
      note));

  async function refresh() {
    try {
      const page = await getJSON("/v1/jobs", { limit: 50, state });
      body.replaceChildren(...page.items.map(row));
      note.textContent = page.items.length ? "" : "No jobs yet: submit some images.";
      note.className = page.items.length ? "muted" : "empty";
    } catch (err) {
      toast(err.message);
    }
  }
  refresh();
  const timer = setInterval(refresh, 2000);
  return () => clearInterval(timer);
}
