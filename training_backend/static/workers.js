// The Training Agent page: Step 1's enrolled downloads (enrollments.js), Step 2 (API
// keys), Step 3 (install commands) and the live list of connected agents.
import { AgentsPanel } from "./agents.js";
import { EnrolledDownloads } from "./enrollments.js";
import { ago, api, confirmAction, el, pageData, setText, showError, when } from "./common.js";

const data = pageData();
let newKey = null; // the key generated on this visit: shown once, put into the commands

// ---- Step 2: API keys --------------------------------------------------------------

const keyForm = document.getElementById("key-form");
const keyError = document.getElementById("key-error");
const keysBody = document.querySelector("#keys tbody");

async function loadKeys() {
  const { api_keys: keys } = await api("/api/user/api-keys");
  keysBody.replaceChildren(...keys.map(keyRow));
  document.getElementById("keys-empty").hidden = keys.length > 0;
}

function keyRow(key) {
  const revoke = el("button", { type: "button", className: "button quiet danger" }, "Revoke");
  revoke.setAttribute("aria-label", `Revoke key ${key.name}`);
  revoke.addEventListener("click", () => revokeKey(key));
  return el(
    "tr",
    { "data-key-id": key.id },
    el("td", {}, key.name),
    el("td", {}, el("code", {}, `${key.key_prefix}…`)),
    el("td", {}, when(key.created_at)),
    el("td", {}, key.last_used_at ? ago(key.last_used_at) : "never"),
    el("td", {}, revoke),
  );
}

async function revokeKey(key) {
  const confirmed = await confirmAction({
    title: `Revoke key ${key.name}?`,
    message: "Agents using this key are refused from their next request on. This cannot be undone.",
    confirmLabel: "Revoke key",
  });
  if (!confirmed) return;
  try {
    await api(`/api/user/api-keys/${encodeURIComponent(key.id)}`, { method: "DELETE" });
    await loadKeys();
    showError(keyError, null);
  } catch (error) {
    showError(keyError, error);
  }
}

keyForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = keyForm.elements.name.value.trim() || `Training Agent - ${new Date().toLocaleString()}`;
  const button = document.getElementById("generate-key");
  button.disabled = true;
  try {
    const { apiKey } = await api("/api/user/api-keys", {
      method: "POST",
      body: { name, scopes: ["training"] },
    });
    newKey = apiKey.key;
    document.getElementById("new-key-value").value = newKey;
    document.getElementById("new-key").hidden = false;
    keyForm.reset();
    showError(keyError, null);
    await Promise.all([loadKeys(), loadSetup()]);
    document.getElementById("new-key-value").focus();
  } catch (error) {
    showError(keyError, error);
  } finally {
    button.disabled = false;
  }
});

// ---- Step 3: install commands ------------------------------------------------------

const platformSelect = document.getElementById("setup-platform");
const setupNote = document.getElementById("setup-note");
const commandsBox = document.getElementById("setup-commands");
const copyCommands = document.getElementById("copy-commands");

for (const platform of data.platforms) {
  platformSelect.append(el("option", { value: platform.id }, platform.name));
}
platformSelect.value = data.detected_platform || "linux";
platformSelect.addEventListener("change", () => loadSetup().catch((e) => showError(setupNote, e)));

async function loadSetup() {
  const setup = await api(`/api/workers/setup?platform=${encodeURIComponent(platformSelect.value)}`);
  setText(document.getElementById("setup-backend-url"), setup.backend_url);
  if (setup.commands === null) {
    // Never an empty box: what this server's administrator runs to offer the agent.
    setText(commandsBox, setup.operator_commands || "");
    copyCommands.disabled = !setup.operator_commands;
    setText(
      setupNote,
      `${setup.message}. Ask this server's administrator to run the commands below on the server, then reload this page.`,
    );
    return;
  }
  copyCommands.disabled = false;
  const key = newKey || setup.api_key_placeholder;
  setText(commandsBox, setup.commands.replaceAll(setup.api_key_placeholder, key));
  setText(
    setupNote,
    newKey
      ? "Your new key is filled in below."
      : `Generate a key in Step 2 and it replaces ${setup.api_key_placeholder} below.`,
  );
}

// ---- Connected agents --------------------------------------------------------------

export const agentsPanel = new AgentsPanel({
  list: document.getElementById("agents"),
  summary: document.getElementById("agents-summary"),
  empty: document.getElementById("agents-empty"),
  errorBox: document.getElementById("agents-error"),
  slot: document.getElementById("agents-slot"),
}).start();

const enrolled = new EnrolledDownloads({
  body: document.querySelector("#enrollments tbody"),
  empty: document.getElementById("enrollments-empty"),
  errorBox: document.getElementById("enrollments-error"),
  status: document.getElementById("download-status"),
  slot: document.getElementById("agents-slot"),
  agents: document.getElementById("agents"),
  agentsEmpty: document.getElementById("agents-empty"),
  knownIds: data.enrollment_ids,
}).start();
agentsPanel.subscribe((agents) => enrolled.agentsListed(agents));

loadKeys().catch((error) => showError(keyError, error));
loadSetup().catch((error) => showError(setupNote, error));
