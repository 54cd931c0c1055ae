// An agent's page: its live status and the history of jobs it ran for you.
import { agentState } from "./agents.js";
import { ago, api, pageData, setText, showError, startPolling } from "./common.js";
import { JobsTable } from "./jobs_table.js";

const PAGE_SIZE = 50;
const { agent_id: agentId } = pageData();
const base = `/api/training/agents/${encodeURIComponent(agentId)}`;
const table = new JobsTable(document.querySelector("#history tbody"), [
  "job",
  "status",
  "created",
]);
const more = document.getElementById("history-more");
let shown = PAGE_SIZE;

async function refresh() {
  const [{ agent }, page] = await Promise.all([
    api(base),
    api(`${base}/jobs?limit=${shown}&offset=0`),
  ]);
  const state = agentState(agent);
  const seen = agent.connected_now ? "connected now" : `last seen ${ago(agent.last_poll_at)}`;
  const labels = agent.labels && agent.labels.length ? `; labels ${agent.labels.join(", ")}` : "";
  setText(document.getElementById("agent-status"), `${state.label}, ${seen}${labels}`);
  table.render(page.jobs);
  document.getElementById("history-empty").hidden = page.total > 0;
  more.hidden = page.total <= page.jobs.length;
}

const poller = startPolling(refresh, 3000, (error) =>
  showError(document.getElementById("history-error"), error),
);
more.addEventListener("click", () => {
  shown += PAGE_SIZE;
  poller.now();
});
