// Enrolled downloads on the Training Agent page: the list of pending enrollment tokens
// (revocable), and a "waiting for your agent…" card after each enrolled download that
// gives way to the agent's own card once that agent has enrolled and polled.
//
// A download is a plain navigation, so the page never sees the token it carries. It
// tells it apart as the first token in the list that was not there before the click:
// the ids the server rendered into the page and those of every answer since cannot be
// it, and the token is made only when the request arrives, so it shows up in a later
// answer.
import { ago, api, confirmAction, el, KeyedList, setText, showError, startPolling, when } from "./common.js";
import { PLATFORM_NAMES } from "./agents.js";

export const ENROLLMENTS_POLL_MS = 2000;
// A click whose token never shows up (the download failed before one was made) stops
// waiting for it after this long, so it cannot claim a later download's token.
const CLICK_FORGOTTEN_MS = 60_000;

function unpackStep(download) {
  if (download.filename.endsWith(".zip")) {
    return ["Open the downloaded ", el("code", {}, download.filename), " and extract all of it."];
  }
  return [
    "Unpack ",
    el("code", {}, download.filename),
    " (double-click it, or ",
    el("code", {}, `tar -xzf ${download.filename}`),
    ").",
  ];
}

function runStep(download) {
  const exe = download.platform === "windows" ? "training-agent.exe" : "training-agent";
  return [
    "In the unpacked folder, double-click ",
    el("code", {}, exe),
    ", or run ",
    el("code", {}, `${download.platform === "windows" ? ".\\" : "./"}${exe} install`),
    " in a terminal there. It shows this server's address and connects by itself.",
  ];
}

class WaitingCard {
  constructor(enrollment, download) {
    this.id = enrollment.id;
    this.status = el("p", { className: "waiting-status", role: "status" });
    const platform = PLATFORM_NAMES[download.platform] || download.platform;
    this.badge = el("span", { className: "badge waiting" }, "Waiting");
    this.title = el("h3", { className: "agent-name" }, "Waiting for your agent…");
    this.node = el(
      "div",
      { className: "agent waiting-card", "data-enrollment-id": enrollment.id },
      el(
        "div",
        { className: "agent-head" },
        this.badge,
        this.title,
      ),
      el(
        "ol",
        { className: "next-steps" },
        el("li", {}, ...unpackStep(download)),
        el("li", {}, ...runStep(download)),
        el("li", {}, `The ${platform} agent appears here as soon as it connects; no key to copy.`),
      ),
      this.status,
    );
  }

  update(enrollment) {
    this.enrollment = enrollment;
    const token = `${enrollment.token_prefix}…`;
    const text = {
      pending: `Its enrollment token ${token} works once, until ${when(enrollment.expires_at)}.`,
      used: `${enrollment.hostname || "The agent"} enrolled ${ago(enrollment.used_at)}; waiting for its first poll.`,
      revoked: `Its token ${token} was revoked: this download can no longer connect; download again.`,
      expired: `Its token ${token} expired unused: download again.`,
    }[enrollment.status];
    setText(this.status, text || "");
    const dead = enrollment.status === "revoked" || enrollment.status === "expired";
    setText(this.badge, dead ? (enrollment.status === "revoked" ? "Revoked" : "Expired") : "Waiting");
    this.badge.className = `badge ${dead ? "revoked" : "waiting"}`;
    setText(this.title, dead ? "This download cannot connect" : "Waiting for your agent…");
  }
}

class PendingRow {
  constructor(enrollment, onRevoke) {
    const revoke = el("button", { type: "button", className: "button quiet danger" }, "Revoke");
    revoke.setAttribute("aria-label", `Revoke enrollment token ${enrollment.token_prefix}`);
    revoke.addEventListener("click", () => onRevoke(this.enrollment));
    this.token = el("code");
    this.created = el("td");
    this.expires = el("td");
    this.node = el(
      "tr",
      { "data-enrollment-id": enrollment.id },
      el("td", {}, this.token),
      this.created,
      this.expires,
      el("td", {}, revoke),
    );
  }

  update(enrollment) {
    this.enrollment = enrollment;
    setText(this.token, `${enrollment.token_prefix}…`);
    setText(this.created, ago(enrollment.created_at));
    setText(this.expires, when(enrollment.expires_at));
  }
}

export class EnrolledDownloads {
  /**
   * `slot`: where waiting cards go; `agents`: the list holding the agents' cards;
   * `agentsEmpty`: its "no agents yet" note, hidden while a card waits.
   */
  constructor({ body, empty, errorBox, status, slot, agents, agentsEmpty, knownIds }) {
    Object.assign(this, { empty, errorBox, status, slot, agents, agentsEmpty });
    this.table = body.closest(".table-wrap");
    this.rows = new KeyedList(body, (e) => e.id, (e) => new PendingRow(e, (x) => this.revoke(x)));
    this.known = new Set(knownIds); // enrollment ids listed before the latest click
    this.expected = []; // enrolled downloads clicked, not yet matched to a token
    this.waiting = new Map(); // enrollment id -> WaitingCard
  }

  start() {
    for (const link of document.querySelectorAll("a[data-enroll]")) {
      link.addEventListener("click", () => this.downloaded(link));
    }
    this.poller = startPolling(() => this.refresh(), ENROLLMENTS_POLL_MS, (error) =>
      showError(this.errorBox, error),
    );
    return this;
  }

  downloaded(link) {
    const filename = link.getAttribute("download");
    this.expected.push({ platform: link.dataset.platform, filename, at: Date.now() });
    setText(
      this.status,
      `Downloading ${filename}. Unpack it and run its installer: your agent shows up ` +
        "under Connected agents, below.",
    );
    setTimeout(() => this.poller.now(), 300);
  }

  async refresh() {
    const { enrollments } = await api("/api/workers/enrollments");
    const fresh = enrollments.filter((e) => !this.known.has(e.id));
    this.known = new Set(enrollments.map((e) => e.id));
    this.expected = this.expected.filter((d) => Date.now() - d.at < CLICK_FORGOTTEN_MS);
    for (const enrollment of fresh.reverse()) {
      const download = this.expected.shift();
      if (!download) break;
      const card = new WaitingCard(enrollment, download);
      this.waiting.set(enrollment.id, card);
      this.slot.append(card.node);
    }
    const byId = new Map(enrollments.map((e) => [e.id, e]));
    for (const [id, card] of this.waiting) {
      if (byId.has(id)) card.update(byId.get(id));
    }
    if (this.waiting.size > 0) this.agentsEmpty.hidden = true;
    const pending = enrollments.filter((e) => e.status === "pending");
    this.rows.sync(pending);
    this.empty.hidden = pending.length > 0;
    this.table.hidden = pending.length === 0;
    if (this.lastAgents) this.agentsListed(this.lastAgents);
  }

  /** Agents panel listener: a waiting card whose agent is listed gives way to its card. */
  agentsListed(agents) {
    this.lastAgents = agents;
    const listed = new Set(agents.filter((a) => a.last_poll_at).map((a) => a.agent_id));
    for (const [id, card] of this.waiting) {
      const agentId = card.enrollment && card.enrollment.agent_id;
      if (!agentId || !listed.has(agentId)) continue;
      card.node.remove();
      this.waiting.delete(id);
      const agentCard = this.agents.querySelector(`li[data-agent-id="${CSS.escape(agentId)}"]`);
      if (agentCard) agentCard.classList.add("just-enrolled");
      const name = card.enrollment.hostname || agentId;
      setText(this.status, `${name} is connected: its card is under Connected agents.`);
    }
    if (this.waiting.size > 0) this.agentsEmpty.hidden = true;
  }

  async revoke(enrollment) {
    const confirmed = await confirmAction({
      title: `Revoke enrollment token ${enrollment.token_prefix}…?`,
      message: "The download that holds it can no longer connect; its installer is refused.",
      confirmLabel: "Revoke token",
    });
    if (!confirmed) return;
    try {
      await api(`/api/workers/enrollments/${encodeURIComponent(enrollment.id)}`, { method: "DELETE" });
      showError(this.errorBox, null);
    } catch (error) {
      showError(this.errorBox, error);
    }
    this.poller.now();
  }
}
