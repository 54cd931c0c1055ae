// The jobs page: the submit form (config JSON or file, optional dataset upload) and the
// live list of your jobs.
import { api, setText, showError, startPolling } from "./common.js";
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
  return job;
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
