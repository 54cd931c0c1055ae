// Connected agents: one card per agent, refreshed every 2 s and updated in place (so
// focus and screen-reader position survive a refresh).
//
// Extension points: `panel.subscribe(listener)` hands every fresh list of agents to
// `listener` (e.g. a "waiting for your agent" card that hides once one shows up), and
// `panel.slot` is an element above the list where such cards go.
import {
  KeyedList,
  ago,
  api,
  confirmAction,
  el,
  num,
  setText,
  showError,
  startPolling,
} from "./common.js";

export const AGENTS_POLL_MS = 2000;
export const PLATFORM_NAMES = { linux: "Linux", darwin: "macOS", windows: "Windows" };

/** "Online", "Offline" or "Revoked", and the badge class that goes with it. */
export function agentState(agent) {
  if (agent.revoked) return { label: "Revoked", className: "revoked" };
  return agent.is_online
    ? { label: "Online", className: "online" }
    : { label: "Offline", className: "offline" };
}

/** "NVIDIA A10 (24 GB, 20 free), driver 550.54", "mps (32 GB unified)", or why none. */
export function gpuText(agent) {
  const info = (agent.metadata && agent.metadata.info) || {};
  const gpus = Array.isArray(info.gpus) ? info.gpus : [];
  if (gpus.length === 0) {
    const why = typeof info.gpu_note === "string" ? info.gpu_note : "none";
    return info.cpu_count ? `${why} (${info.cpu_count} CPUs)` : info.gpu_note ? why : "none reported";
  }
  const listed = gpus.map((gpu) => {
    const name = gpu.name || "GPU " + gpu.index;
    if (gpu.kind === "mps") return `${name} (${num(gpu.memory_gb, 3)} GB unified)`;
    const free = gpu.memory_free_gb == null ? "" : `, ${num(gpu.memory_free_gb, 3)} free`;
    return `${name} (${num(gpu.memory_gb, 3)} GB${free})`;
  });
  const driver = typeof info.gpu_driver === "string" ? `, driver ${info.gpu_driver}` : "";
  return listed.join(", ") + driver;
}

const UPDATE_WORDS = {
  available: "update available",
  pending: "update pending",
  ready: "update ready, after the running job",
  updating: "updating",
  trial: "new version, until its first poll",
  failed: "update failed",
};

/** The agent's self-update as it reports it: "update pending: 0.3.0", "update failed: 0.3.0 (why)". */
export function updateText(agent) {
  const info = (agent.metadata && agent.metadata.info) || {};
  const update = info.update;
  if (!update || typeof update.state !== "string" || !(update.state in UPDATE_WORDS)) return "";
  const version = typeof update.version === "string" ? ` ${update.version}` : "";
  const reason = typeof update.reason === "string" && update.reason ? ` (${update.reason})` : "";
  return `${UPDATE_WORDS[update.state]}:${version}${reason}`;
}

class AgentCard {
  constructor(agent, panel) {
    this.agent = agent;
    this.badge = el("span", { className: "badge" });
    this.name = el("h3", { className: "agent-name" });
    this.facts = {};
    const facts = el("dl", { className: "facts compact" });
    for (const [key, label] of [
      ["id", "Agent id"],
      ["platform", "Platform"],
      ["version", "Version"],
      ["seen", "Last seen"],
      ["labels", "Labels"],
      ["gpus", "GPUs"],
      ["job", "Running"],
    ]) {
      this.facts[key] = el("dd");
      facts.append(el("dt", {}, label), this.facts[key]);
    }
    this.toggle = el("button", { type: "button", className: "button quiet" });
    this.toggle.addEventListener("click", () => panel.toggleRevoked(this.agent));
    const history = el("a", { href: `/workers/${encodeURIComponent(agent.agent_id)}` }, "Job history");
    this.node = el(
      "li",
      { className: "agent", "data-agent-id": agent.agent_id },
      el("div", { className: "agent-head" }, this.badge, this.name),
      facts,
      el("div", { className: "actions" }, history, this.toggle),
    );
  }

  update(agent) {
    this.agent = agent;
    const state = agentState(agent);
    setText(this.badge, state.label);
    this.badge.className = `badge ${state.className}`;
    setText(this.name, agent.hostname || agent.agent_id);
    setText(this.facts.id, agent.agent_id);
    setText(this.facts.platform, PLATFORM_NAMES[agent.platform] || agent.platform || "unknown");
    setText(this.facts.version, [agent.version || "unknown", updateText(agent)].filter(Boolean).join(" · "));
    // A long-polling agent polls every 30 s: while it holds a poll it is connected now,
    // whatever its last poll's age says.
    setText(this.facts.seen, agent.connected_now ? "connected now" : ago(agent.last_poll_at));
    setText(this.facts.labels, (agent.labels || []).join(", ") || "none");
    setText(this.facts.gpus, gpuText(agent));
    this.renderJobs(agent.current_jobs);
    const label = agent.revoked ? "Enable" : "Revoke";
    setText(this.toggle, label);
    this.toggle.setAttribute("aria-label", `${label} agent ${agent.hostname || agent.agent_id}`);
    this.toggle.classList.toggle("danger", !agent.revoked);
  }

  renderJobs(jobs) {
    const key = JSON.stringify(jobs.map((job) => [job.id, job.status, job.progress]));
    if (this.jobsKey === key) return;
    this.jobsKey = key;
    const cell = this.facts.job;
    if (jobs.length === 0) {
      cell.replaceChildren("idle");
      return;
    }
    cell.replaceChildren(
      ...jobs.map((job) => {
        const percent = job.progress === null ? null : Math.round(job.progress);
        const bar = el("progress", { max: 100, "aria-label": `Progress of ${job.model_name || job.id}` });
        if (percent !== null) bar.value = percent;
        const text = percent === null ? job.status : `${percent} % · ${job.status}`;
        return el(
          "span",
          { className: "current-job" },
          el("a", { href: `/jobs/${job.id}` }, job.model_name || job.id.slice(0, 8)),
          bar,
          el("span", { className: "muted" }, text),
        );
      }),
    );
  }
}

export class AgentsPanel {
  constructor({ list, summary, empty, errorBox, slot }) {
    Object.assign(this, { list, summary, empty, errorBox, slot });
    this.cards = new KeyedList(list, (agent) => agent.agent_id, (agent) => new AgentCard(agent, this));
    this.listeners = [];
  }

  start() {
    this.poller = startPolling(() => this.refresh(), AGENTS_POLL_MS, (error) =>
      showError(this.errorBox, error),
    );
    return this;
  }

  subscribe(listener) {
    this.listeners.push(listener);
  }

  async refresh() {
    const { agents } = await api("/api/training/agents");
    this.render(agents);
    for (const listener of this.listeners) listener(agents);
  }

  render(agents) {
    this.cards.sync(agents);
    this.empty.hidden = agents.length > 0;
    const online = agents.filter((agent) => agent.is_online && !agent.revoked).length;
    setText(this.summary, `${online} online`);
  }

  async toggleRevoked(agent) {
    const name = agent.hostname || agent.agent_id;
    const path = `/api/training/agents/${encodeURIComponent(agent.agent_id)}`;
    try {
      if (agent.revoked) {
        await api(`${path}/enable`, { method: "POST" });
      } else {
        const confirmed = await confirmAction({
          title: `Revoke agent ${name}?`,
          message:
            "Its polls are refused from now on: it finishes the job it is running, " +
            "takes no new ones and stops. You can enable it again later.",
          confirmLabel: "Revoke agent",
        });
        if (!confirmed) return;
        await api(path, { method: "DELETE" });
      }
      showError(this.errorBox, null);
    } catch (error) {
      showError(this.errorBox, error);
    }
    this.poller.now();
  }
}
