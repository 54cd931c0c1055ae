// A live table of jobs (the jobs list, an agent's history), one row per job, updated in
// place. Columns are chosen per table: "job", "status", "agent", "progress", "created".
import { KeyedList, el, setText, when } from "./common.js";

/** The progress text of a job: "42 % (step 120 of 400)", "step 12", or "—". */
export function progressText(job) {
  const step = job.current_step;
  // The status view says 0 % while the total is unknown; only a known total makes a percentage.
  const known = Boolean(job.total_steps) || job.progress > 0;
  if (known && job.progress !== null && job.progress !== undefined) {
    const of = step && job.total_steps ? ` (step ${step} of ${job.total_steps})` : "";
    return `${Math.round(job.progress)} %${of}`;
  }
  return step ? `step ${step}` : "—";
}

/** The status shown for a job, with a pending request ("running, cancel requested"). */
export function statusText(job) {
  return job.control ? `${job.status}, ${job.control} requested` : job.status;
}

/** What a job not yet claimed waits for: "waiting for an agent with label a100 (none online)". */
export function waitingText(job) {
  if (job.waiting_for) return `waiting for ${job.waiting_for}`;
  return job.status === "pending" ? "not claimed yet" : "—";
}

const CELLS = {
  job: (job) => el("a", { href: `/jobs/${job.id}` }, job.model_name || job.id.slice(0, 8)),
  status: (job) => el("span", { className: `badge status-${job.status}` }, statusText(job)),
  agent: (job) =>
    job.agent_id
      ? el("a", { href: `/workers/${encodeURIComponent(job.agent_id)}` }, el("code", {}, job.agent_id))
      : el("span", { className: "muted waiting" }, waitingText(job)),
  progress: (job) => progressText(job),
  created: (job) => when(job.created_at),
};

class JobRow {
  constructor(job, columns) {
    this.columns = columns;
    this.node = el("tr", { "data-job-id": job.id });
    this.cells = {};
    for (const column of columns) {
      this.cells[column] = el("td", { "data-column": column });
      this.node.append(this.cells[column]);
    }
  }

  update(job) {
    for (const column of this.columns) {
      const fresh = CELLS[column](job);
      const cell = this.cells[column];
      if (typeof fresh === "string") setText(cell, fresh);
      else if (!cell.firstChild || !fresh.isEqualNode(cell.firstChild)) cell.replaceChildren(fresh);
    }
  }
}

/** A live table body of jobs, one row per job, showing `columns` (keys of CELLS). */
export class JobsTable {
  constructor(tbody, columns) {
    this.rows = new KeyedList(tbody, (job) => job.id, (job) => new JobRow(job, columns));
  }

  /** Show `jobs` in this order, updating rows in place. */
  render(jobs) {
    this.rows.sync(jobs);
  }
}
