// The job's other series (feature metrics_extra: rewards/margins, kl, reward, ...): a
// checkbox per series name found in the points, and one small chart per chosen series,
// each on its own scale. Names come from the trainer: only ever text, never markup.
import { drawChart } from "./chart.js";
import { el } from "./common.js";

// Shown first when present: what a person watching a preference or RL run looks at.
const PREFERRED = ["rewards/margins", "rewards/accuracies", "reward", "kl", "accuracy", "margin"];
const DEFAULT_SHOWN = 2;
const chosen = new Set();
let known = "";
let latest = [];

function namesOf(rows) {
  const names = new Set();
  for (const row of rows) for (const name of Object.keys(row.extra || {})) names.add(name);
  const rank = (name) => (PREFERRED.includes(name) ? PREFERRED.indexOf(name) : PREFERRED.length);
  return [...names].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

function renderChoices(box, names) {
  if (chosen.size === 0) names.slice(0, DEFAULT_SHOWN).forEach((name) => chosen.add(name));
  box.replaceChildren(
    ...names.map((name) => {
      const input = el("input", { type: "checkbox", checked: chosen.has(name), "data-series": name });
      input.addEventListener("change", () => {
        if (input.checked) chosen.add(name);
        else chosen.delete(name);
        drawCharts(box.closest("section"));
      });
      return el("label", { className: "series-choice" }, input, ` ${name}`);
    }),
  );
}

function drawCharts(section) {
  const charts = section.querySelector(".extra-charts");
  const names = [...chosen].filter((name) => latest.some((row) => row.extra && name in row.extra));
  charts.replaceChildren(
    ...names.map((name) => {
      const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
      svg.setAttribute("viewBox", "0 0 640 260");
      svg.setAttribute("role", "img");
      svg.setAttribute("aria-label", `${name} by step`);
      const rows = latest.map((row) => ({ step: row.step, value: row.extra ? row.extra[name] : undefined }));
      const counts = drawChart(svg, rows, [{ key: "value", className: "extra", label: name }]);
      svg.dataset.series = name;
      svg.dataset.points = counts.value;
      return el("figure", { className: "chart" }, svg, el("figcaption", {}, el("span", { className: "legend extra" }, name)));
    }),
  );
}

/** Show the series of `rows` (metric rows sorted by step) in `section`; hidden when none. */
export function drawExtraCharts(section, rows) {
  latest = rows;
  const names = namesOf(rows);
  section.hidden = names.length === 0;
  if (names.length === 0) return;
  const key = names.join("\n");
  if (key !== known) {
    known = key;
    renderChoices(section.querySelector(".series-choices"), names);
  }
  drawCharts(section);
}
