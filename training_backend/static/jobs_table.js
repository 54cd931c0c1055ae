// A live table of jobs (the jobs list, an agent's history), one row per job, updated in
// place. Columns are chosen per table: "job", "status", "agent", "progress", "created".
import { el, setText, when } from "./common.js";

/** The progress text of a job: "42 % (step 120 of 400)", "step 12", or "—". */
export function progressText(job) {
  const step = job.current_step;
  if (job.progress !== null && job.progress !== undefined) {
    const of = step && job.total_steps ? ` (step ${step} of ${job.total_steps})` : "";
    return `${Math.round(job.progress)} %${of}`;
  }
  return step ? `step ${step}` : "—";
}

/** The status shown for a job, with a pending request ("running, cancel requested"). */
export function statusText(job) {
  return job.control ? `${job.status}, ${job.control} requested` : job.status;
}

const CELLS = {
  job: (job) => el("a", { href: `/jobs/${job.id}` }, job.model_name || job.id.slice(0, 8)),
  status: (job) => el("span", { className: `badge status-${job.status}` }, statusText(job)),
  agent: (job) =>
    job.agent_id
      ? el("a", { href: `/workers/${encodeURIComponent(job.agent_id)}` }, el("code", {}, job.agent_id))
      : el("span", { className: "muted" }, "not claimed yet"),
  progress: (job) => progressText(job),
  created: (job) => when(job.created_at),
};

export class JobsTable {
  constructor(tbody, columns) {
    this.tbody = tbody;
    this.columns = columns;
    this.rows = new Map();
  }

  /** Show `jobs` (in this order): new rows are added, changed cells replaced, gone ones removed. */
  render(jobs) {
    const seen = new Set();
    jobs.forEach((job, index) => {
      let row = this.rows.get(job.id);
      if (!row) {
        row = { node: el("tr", { "data-job-id": job.id }), cells: {} };
        for (const column of this.columns) {
          row.cells[column] = el("td", { "data-column": column });
          row.node.append(row.cells[column]);
        }
        this.rows.set(job.id, row);
      }
      this.update(row, job);
      const here = this.tbody.children[index];
      if (here !== row.node) this.tbody.insertBefore(row.node, here || null);
      seen.add(job.id);
    });
    for (const [id, row] of this.rows) {
      if (!seen.has(id)) {
        row.node.remove();
        this.rows.delete(id);
      }
    }
  }

  update(row, job) {
    for (const column of this.columns) {
      const fresh = CELLS[column](job);
      const cell = row.cells[column];
      if (typeof fresh === "string") setText(cell, fresh);
      else if (!cell.firstChild || !fresh.isEqualNode(cell.firstChild)) cell.replaceChildren(fresh);
    }
  }
}
