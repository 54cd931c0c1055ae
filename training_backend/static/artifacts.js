// The artifacts section of a job's page: each artifact with its size and SHA-256, a
// download button once it is complete, and the upload's progress, rate and time left
// while it arrives.
import { api, duration, el, KeyedList, setText, showError } from "./common.js";

const $ = (id) => document.getElementById(id);

/** "1.5 GB", "320 MB", "12 kB", "17 B" (powers of 1000, like the quota). */
export function size(bytes) {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${bytes} B` : `${value.toPrecision(3)} ${units[unit]}`;
}

/** Upload rate and time left from the bytes seen at two moments (null before the second). */
function progressOf(seen, artifact, now) {
  const before = seen.get(artifact.id);
  seen.set(artifact.id, { bytes: artifact.received_bytes, at: now });
  if (!before || now <= before.at || artifact.received_bytes <= before.bytes) return null;
  const rate = (artifact.received_bytes - before.bytes) / ((now - before.at) / 1000);
  const left = (artifact.size_bytes - artifact.received_bytes) / rate;
  return { rate, left };
}

function makeRow(jobId) {
  return (artifact) => {
    const url = `/api/training/jobs/${encodeURIComponent(jobId)}/artifacts/${encodeURIComponent(artifact.id)}`;
    const cells = {
      name: el("td", {}, artifact.name),
      kind: el("td", {}, artifact.kind),
      size: el("td", {}, size(artifact.size_bytes)),
      sha: el("td", {}, el("code", { className: "sha256", title: artifact.sha256 }, artifact.sha256)),
      state: el("td", {}),
    };
    const link = el("a", { className: "button", href: url, download: artifact.name }, "Download");
    link.setAttribute("aria-label", `Download ${artifact.name}`);
    const bar = el("progress", { max: 100, value: 0 });
    bar.setAttribute("aria-label", `Upload of ${artifact.name}`);
    const note = el("span", { className: "muted" });
    const node = el("tr", { "data-artifact": artifact.id }, ...Object.values(cells));
    return {
      node,
      update(current) {
        node.dataset.complete = String(current.complete);
        if (current.complete) {
          if (!link.isConnected) cells.state.replaceChildren(link);
          return;
        }
        if (!bar.isConnected) cells.state.replaceChildren(bar, " ", note);
        const percent = current.size_bytes ? (100 * current.received_bytes) / current.size_bytes : 0;
        bar.value = percent;
        const p = current.progress;
        const speed = p ? `, ${size(p.rate)}/s, about ${duration(p.left)} left` : "";
        setText(note, `uploading: ${size(current.received_bytes)} of ${size(current.size_bytes)}${speed}`);
      },
    };
  };
}

/** The artifacts section of job `jobId`; `refresh()` reads the list again. */
export class ArtifactsSection {
  constructor(jobId) {
    this.url = `/api/training/jobs/${encodeURIComponent(jobId)}/artifacts`;
    this.rows = new KeyedList($("artifacts").tBodies[0], (a) => a.id, makeRow(jobId));
    this.seen = new Map();
  }

  async refresh() {
    try {
      const { artifacts } = await api(this.url);
      const now = Date.now();
      const shown = artifacts.map((a) => ({ ...a, progress: a.complete ? null : progressOf(this.seen, a, now) }));
      this.rows.sync(shown);
      $("artifacts-empty").hidden = artifacts.length > 0;
      showError($("artifacts-error"), null);
    } catch (error) {
      showError($("artifacts-error"), error);
    }
  }
}
