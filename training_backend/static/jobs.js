// The jobs page: the submit form (config JSON or file, optional dataset upload, where the
// job may run) and the live list of your jobs.
import { api, el, setText, showError, startPolling } from "./common.js";
import { JobsTable } from "./jobs_table.js";

const form = document.getElementById("job-form");
const errorBox = document.getElementById("job-error");
const note = document.getElementById("job-progress-note");
const table = new JobsTable(document.querySelector("#jobs tbody"), [
  "job",
  "status",
  "agent",
  "progress",
  "created",
]);

// The agent menu of the form lists your agents (any matching one stays the default).
api("/api/training/agents")
  .then(({ agents }) => {
    const menu = form.elements.agent_id;
    for (const agent of agents) {
      if (agent.revoked) continue;
      const name = agent.hostname ? `${agent.hostname} (${agent.agent_id})` : agent.agent_id;
      menu.append(el("option", { value: agent.agent_id }, name));
    }
  })
  .catch((error) => showError(errorBox, error));

startPolling(
  async () => {
    const page = await api("/api/training/jobs?limit=100");
    table.render(page.jobs);
    document.getElementById("jobs-empty").hidden = page.total > 0;
  },
  3000,
  (error) => showError(document.getElementById("jobs-error"), error),
);

// A chosen JSON file is loaded into the text area, so what is submitted is on screen.
document.getElementById("job-config-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (file) form.elements.config.value = await file.text();
});

/** The job body from the form: the pasted JSON is a config, or a whole job with `config`. */
function jobFromForm() {
  const text = form.elements.config.value.trim();
  if (!text) throw new Error("Paste a training config, or load it from a JSON file.");
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`The config is not valid JSON: ${error.message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new Error("The config must be a JSON object ({ … }).");
  }
  const job = "config" in parsed ? { ...parsed } : { config: parsed };
  const model = form.elements.model_name.value.trim();
  if (model) job.model_name = model;
  const requirements = requirementsFromForm();
  if (requirements) job.requirements = { ...(job.requirements || {}), ...requirements };
  return job;
}

/** The "Where it runs" fields as requirements, or null when none is filled in. The server
 * checks them (and says what is wrong in one sentence); numbers go as numbers. */
function requirementsFromForm() {
  const wanted = {};
  const labels = form.elements.labels.value
    .split(",")
    .map((label) => label.trim())
    .filter(Boolean);
  if (labels.length) wanted.labels = labels;
  if (form.elements.agent_id.value) wanted.agent_id = form.elements.agent_id.value;
  const gpus = form.elements.min_gpus.value.trim();
  if (gpus) wanted.min_gpus = Number(gpus);
  const memory = form.elements.min_gpu_memory_gb.value.trim();
  if (memory) wanted.min_gpu_memory_gb = Number(memory);
  return Object.keys(wanted).length ? wanted : null;
}

async function uploadDataset(file) {
  setText(note, `Uploading ${file.name}…`);
  const { dataset } = await api(`/api/training/datasets?filename=${encodeURIComponent(file.name)}`, {
    method: "POST",
    file,
  });
  return dataset.id;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = document.getElementById("submit-job");
  button.disabled = true;
  try {
    const job = jobFromForm();
    const dataset = document.getElementById("job-dataset").files[0];
    if (dataset) job.dataset_id = await uploadDataset(dataset);
    setText(note, "Submitting…");
    const { job: created } = await api("/api/training/jobs", { method: "POST", body: job });
    location.assign(`/jobs/${created.id}`);
  } catch (error) {
    setText(note, "");
    showError(errorBox, error);
    form.elements.config.focus();
  } finally {
    button.disabled = false;
  }
});
