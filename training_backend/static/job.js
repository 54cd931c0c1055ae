// A job's page: status, progress and time left, the loss chart, the last metrics, the
// artifacts, the log tail, and cancel / pause / resume. Refreshed every 2 s until the
// job ends.
import { ArtifactsSection } from "./artifacts.js";
import { drawLossChart } from "./chart.js";
import { drawExtraCharts } from "./extra_chart.js";
import {
  api,
  confirmAction,
  duration,
  el,
  num,
  pageData,
  setText,
  showError,
  startPolling,
  when,
} from "./common.js";
import { progressText, statusText, waitingText } from "./jobs_table.js";

const POLL_MS = 2000;
const LOG_TAIL_LINES = 500;
const LOG_PAGE = 1000;
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const { job_id: jobId } = pageData();
const base = `/api/training/local/${encodeURIComponent(jobId)}`;
const $ = (id) => document.getElementById(id);

// ---- status ------------------------------------------------------------------------

const METRIC_LABELS = [
  ["current_step", "Step"],
  ["current_epoch", "Epoch"],
  ["loss", "Train loss"],
  ["eval_loss", "Eval loss"],
  ["learning_rate", "Learning rate"],
  ["grad_norm", "Gradient norm"],
  ["train_perplexity", "Train perplexity"],
  ["eval_perplexity", "Eval perplexity"],
  ["samples_per_second", "Samples / s"],
  ["tokens_per_second", "Tokens / s"],
  ["gpu_memory_allocated_gb", "GPU memory allocated (GB)"],
  ["gpu_utilization_percent", "GPU utilisation (%)"],
];

const CONTROL_NOTES = {
  cancel: "Cancel requested: the agent stops the job at its next heartbeat.",
  pause: "Pause requested: the agent pauses the job at its next heartbeat.",
  resume: "Resume requested: the agent resumes the job at its next heartbeat.",
};

/** Time left, from the time so far and the progress: "about 3 min 20 s", or "—". */
function eta(status) {
  const p = status.progress;
  if (status.status === "completed") return "done";
  if (status.status !== "running" || !(p > 0 && p < 100) || !status.elapsed_seconds) return "—";
  return `about ${duration((status.elapsed_seconds * (100 - p)) / p)}`;
}

function renderStatus(status) {
  const badge = $("job-status");
  setText(badge, statusText(status));
  badge.className = `badge status-${status.status}`;
  $("job-progress").value = status.progress || 0;
  setText($("job-progress-text"), progressText(status));
  setText($("job-eta"), eta(status));
  setText($("job-elapsed"), status.started_at ? duration(status.elapsed_seconds) : "not started");
  setText($("job-created"), when(status.created_at));
  renderAgent(status);
  const note = $("job-control-note");
  note.hidden = !status.control;
  setText(note, CONTROL_NOTES[status.control] || "");
  setText($("job-failure"), status.error ? `The job failed: ${status.error}` : "");
  const open = !TERMINAL.has(status.status);
  $("job-pause").disabled = status.status !== "running" || Boolean(status.control);
  $("job-resume").disabled = status.status !== "paused" || Boolean(status.control);
  $("job-cancel").disabled = !open || status.control === "cancel";
  renderMetrics(status);
}

function renderAgent(status) {
  const agentId = status.agent_id;
  const cell = $("job-agent");
  const shown = agentId || waitingText(status);
  if (cell.dataset.agent === shown) return;
  cell.dataset.agent = shown;
  cell.replaceChildren(
    agentId ? el("a", { href: `/workers/${encodeURIComponent(agentId)}` }, el("code", {}, agentId)) : shown,
  );
}

function renderMetrics(status) {
  const list = $("job-metrics");
  const shown = METRIC_LABELS.filter(([key]) => status[key] !== null && status[key] !== undefined);
  if (list.childElementCount !== shown.length * 2) {
    list.replaceChildren(
      ...shown.flatMap(([key, label]) => [el("dt", {}, label), el("dd", { "data-metric": key })]),
    );
  }
  for (const [key] of shown) {
    setText(list.querySelector(`[data-metric="${key}"]`), num(status[key], key.endsWith("step") ? 10 : 4));
  }
}

// ---- metrics and chart -------------------------------------------------------------

const points = new Map(); // step -> stored metric row
let highestStep = 0;

async function loadMetrics() {
  // Agents report points in step order, and a point may gain values later (an eval
  // loss after the train loss of the same step), so the highest step is asked for again.
  const after = Math.max(0, highestStep - 1);
  const { metrics } = await api(`${base}/metrics?after_step=${after}`);
  let changed = false;
  for (const row of metrics) {
    const old = points.get(row.step);
    if (!old || old.updated_at !== row.updated_at) {
      points.set(row.step, row);
      changed = true;
    }
    highestStep = Math.max(highestStep, row.step);
  }
  if (changed || points.size === 0) drawChart();
}

function drawChart() {
  const rows = [...points.values()].sort((a, b) => a.step - b.step);
  const svg = $("loss-chart");
  const counts = drawLossChart(svg, rows);
  svg.dataset.trainPoints = counts.train_loss;
  svg.dataset.evalPoints = counts.eval_loss;
  const last = rows[rows.length - 1];
  setText(
    $("chart-summary"),
    rows.length === 0
      ? "No metrics yet."
      : `${counts.train_loss} train and ${counts.eval_loss} eval points up to step ${last.step}.`,
  );
  drawExtraCharts($("extra-series"), rows);
}

// ---- log tail ----------------------------------------------------------------------

let logOffset = null; // index of the next line to fetch
let logLines = [];

async function loadLogs() {
  if (logOffset === null) {
    const { total_lines: total } = await api(`${base}/logs?offset=0&limit=1`);
    logOffset = Math.max(0, total - LOG_TAIL_LINES);
  }
  const { logs } = await api(`${base}/logs?offset=${logOffset}&limit=${LOG_PAGE}`);
  if (logs.length === 0) return;
  logOffset += logs.length;
  logLines = logLines.concat(logs).slice(-LOG_TAIL_LINES);
  const box = $("job-log");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  box.textContent = logLines.join("\n");
  if (atBottom) box.scrollTop = box.scrollHeight;
}

// ---- controls ----------------------------------------------------------------------

async function control(action) {
  if (action === "cancel") {
    const confirmed = await confirmAction({
      title: "Cancel this job?",
      message: "The agent stops it (the trainer gets a moment to save a checkpoint). This cannot be undone.",
      confirmLabel: "Cancel job",
    });
    if (!confirmed) return;
  }
  try {
    await api(`${base}/control`, { method: "POST", body: { action } });
    showError($("job-failure"), null);
  } catch (error) {
    showError($("job-failure"), error);
  }
  poller.now();
}

for (const action of ["pause", "resume", "cancel"]) {
  $(`job-${action}`).addEventListener("click", () => control(action));
}

const artifacts = new ArtifactsSection(jobId);

const poller = startPolling(
  async () => {
    const status = await api(`${base}/status`);
    renderStatus(status);
    await Promise.all([loadMetrics(), loadLogs(), artifacts.refresh()]);
    if (TERMINAL.has(status.status)) poller.stop();
  },
  POLL_MS,
  (error) => {
    if (error) showError($("job-failure"), error);
  },
);
