// The loss chart: train and eval loss over steps, drawn as inline SVG (no library);
// drawChart draws any series of metric rows the same way (extra_chart.js uses it).
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const HEIGHT = 260;
const PAD = { left: 56, right: 16, top: 12, bottom: 34 };
const MAX_POINTS = 1500; // per series; more are thinned evenly (the last point is kept)
export const SERIES = [
  { key: "train_loss", className: "train", label: "train" },
  { key: "eval_loss", className: "eval", label: "eval" },
];

function node(tag, attrs, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function thin(points) {
  if (points.length <= MAX_POINTS) return points;
  const every = Math.ceil(points.length / MAX_POINTS);
  const kept = points.filter((_, index) => index % every === 0);
  if (kept[kept.length - 1] !== points[points.length - 1]) kept.push(points[points.length - 1]);
  return kept;
}

function ticks(min, max, count) {
  return Array.from({ length: count + 1 }, (_, i) => min + ((max - min) * i) / count);
}

function label(value) {
  return Math.abs(value) >= 1000 ? value.toExponential(1) : Number(value.toPrecision(3)).toString();
}

/**
 * Draw `points` (metric rows sorted by step) into `svg`; returns how many points of each
 * series were drawn, e.g. {train_loss: 120, eval_loss: 6}.
 */
export function drawLossChart(svg, points) {
  return drawChart(svg, points, SERIES);
}

/** Draw `series` ([{key, className, label}]) of `points` into `svg`; the counts drawn. */
export function drawChart(svg, points, chartSeries) {
  const series = chartSeries.map((s) => ({
    ...s,
    points: thin(points.filter((p) => typeof p[s.key] === "number" && Number.isFinite(p[s.key]))),
  }));
  const all = series.flatMap((s) => s.points.map((p) => [p.step, p[s.key]]));
  svg.replaceChildren();
  const counts = Object.fromEntries(series.map((s) => [s.key, s.points.length]));
  if (all.length === 0) return counts;

  const steps = all.map(([step]) => step);
  const values = all.map(([, value]) => value);
  let [x0, x1] = [Math.min(...steps), Math.max(...steps)];
  let [y0, y1] = [Math.min(...values), Math.max(...values)];
  if (x0 === x1) [x0, x1] = [x0 - 1, x1 + 1];
  if (y0 === y1) [y0, y1] = [y0 - 0.5, y1 + 0.5];
  const margin = (y1 - y0) * 0.05;
  [y0, y1] = [y0 - margin, y1 + margin];
  const x = (step) => PAD.left + ((step - x0) / (x1 - x0)) * (WIDTH - PAD.left - PAD.right);
  const y = (value) => HEIGHT - PAD.bottom - ((value - y0) / (y1 - y0)) * (HEIGHT - PAD.top - PAD.bottom);

  const axes = node("g", { class: "axes" });
  for (const value of ticks(y0, y1, 4)) {
    axes.append(node("line", { x1: PAD.left, x2: WIDTH - PAD.right, y1: y(value), y2: y(value), class: "grid" }));
    axes.append(node("text", { x: PAD.left - 6, y: y(value) + 4, "text-anchor": "end" }, label(value)));
  }
  for (const step of ticks(x0, x1, 4)) {
    axes.append(node("text", { x: x(step), y: HEIGHT - PAD.bottom + 18, "text-anchor": "middle" }, String(Math.round(step))));
  }
  axes.append(node("text", { x: WIDTH - PAD.right, y: HEIGHT - 4, "text-anchor": "end" }, "step"));
  svg.append(axes);

  for (const s of series) {
    if (s.points.length === 0) continue;
    const coords = s.points.map((p) => `${x(p.step).toFixed(1)},${y(p[s.key]).toFixed(1)}`);
    svg.append(node("polyline", { points: coords.join(" "), class: `line ${s.className}`, "data-series": s.key }));
    if (s.points.length <= 60) {
      for (const p of s.points) {
        svg.append(node("circle", { cx: x(p.step), cy: y(p[s.key]), r: 3, class: `dot ${s.className}` }));
      }
    }
  }
  return counts;
}
