// The usage page: GET /bodhi/v1/usage grouped by model, user, API model, token or served model (a router's
// target) over a period of days, as a table (with the cost in US dollars at the models' prices, and what no price
// covers) and as a uPlot bar chart of the total tokens per group (the table is the chart's text alternative). The
// prices are prices.js's.
import { get } from "./api.js";
import { h } from "./dom.js";
import { clearErrors, showError } from "./forms.js";
import { handleSessionEnded, roleAtLeast, whoami } from "./layout.js";
import { costText, formatCount } from "./money.js";

const GROUPS = {
  model: { name: "model", title: "Model", none: "(no model)" },
  user: { name: "user", title: "User", none: "(deleted user)" },
  api_model: { name: "API model", title: "API model", none: "Local models" },
  token: { name: "token", title: "Token", none: "(signed-in sessions)" },
  // the model that answered: a router's target, else the model asked for
  target: { name: "served model", title: "Served model", none: "(no model)" },
};
const DAY_MS = 24 * 60 * 60 * 1000;
const LABEL_CHARS = 18; // a bar's label is cut to this, or to what fits its slot, up to MAX_LABEL_CHARS
const MAX_LABEL_CHARS = 40;
const CHAR_PX = 7.5; // about the width of a character of the chart's 13px font
const SLANT = 40; // degrees, for labels too wide for their bars

const form = document.getElementById("usage-form");
const groupSelect = document.getElementById("usage-group");
const fromInput = document.getElementById("usage-from");
const toInput = document.getElementById("usage-to");
const status = document.getElementById("usage-status");
const results = document.getElementById("usage-results");
const table = document.getElementById("usage-table");
const chartBox = document.getElementById("usage-chart");

const compactFormat = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 1 });
const dayFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

let plot = null;
let shown = []; // the groups on the chart: [{label, total}]
let names = {}; // group_by -> Promise of {key: display name}

// <input type=date> values are local days: YYYY-MM-DD.
const isoDay = (date) =>
  `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
const localMidnight = (day) => {
  const [year, month, date] = day.split("-").map(Number);
  return new Date(year, month - 1, date);
};

function pickDays(days) {
  const today = new Date();
  toInput.value = isoDay(today);
  fromInput.value = isoDay(new Date(today.getFullYear(), today.getMonth(), today.getDate() - (days - 1)));
  markPick(days);
}

function markPick(days) {
  for (const pick of form.querySelectorAll("[data-days]")) {
    pick.setAttribute("aria-pressed", String(Number(pick.dataset.days) === days));
  }
}

// Display names for the group keys: user ids and API model ids become names where the caller may see them.
async function loadNames(groupBy) {
  if (groupBy === "user") {
    const me = await whoami();
    if (!roleAtLeast(me.role, "manager")) return { [me.id]: me.username };
    const users = (await get("/bodhi/v1/users")).data;
    return Object.fromEntries(users.map((user) => [user.id, user.username]));
  }
  if (groupBy === "api_model") {
    const models = (await get("/bodhi/v1/models/api")).data;
    return Object.fromEntries(models.map((model) => [model.id, model.name]));
  }
  return {};
}

function namesFor(groupBy) {
  names[groupBy] ??= loadNames(groupBy).catch(() => ({})); // a missing name shows the id instead
  return names[groupBy];
}

const milliseconds = (value) => (value === null || value === undefined ? "–" : `${formatCount(Math.round(value))} ms`);

function tableRow([first, ...rest]) {
  return h("tr", {}, h("th", { scope: "row" }, first), rest.map((cell) => h("td", { class: "number" }, cell)));
}

function showTable(rows, groupBy, nameOf) {
  const cells = (row) => [
    row.key === null ? GROUPS[groupBy].none : (nameOf[row.key] ?? row.name ?? row.key),
    formatCount(row.requests),
    formatCount(row.prompt_tokens),
    formatCount(row.completion_tokens),
    formatCount(row.total_tokens),
    costText(row),
    milliseconds(row.avg_ttft_ms),
    milliseconds(row.avg_duration_ms),
    formatCount(row.failed),
  ];
  table.tBodies[0].replaceChildren(...rows.map((row) => tableRow(cells(row))));
  const sum = (field) => rows.reduce((total, row) => total + Number(row[field]), 0);
  const totals = ["All", ...["requests", "prompt_tokens", "completion_tokens", "total_tokens"].map((f) => formatCount(sum(f)))];
  const anyPriced = rows.some((row) => row.cost !== null);
  const cost = costText({ cost: anyPriced ? sum("cost") : null, unpriced_tokens: sum("unpriced_tokens") });
  table.tFoot.replaceChildren(rows.length > 1 ? tableRow([...totals, cost, "", "", formatCount(sum("failed"))]) : "");
  return rows.map((row) => ({ label: cells(row)[0], total: Number(row.total_tokens) }));
}

function colours() {
  const style = getComputedStyle(document.documentElement);
  const value = (name) => style.getPropertyValue(name).trim();
  return { bar: value("--accent"), text: value("--text"), grid: value("--border") };
}

// Whole-number steps for the token axis: 1, 2, 5, 10, 20, 50, …
const STEPS = Array.from({ length: 30 }, (_, i) => [1, 2, 5][i % 3] * 10 ** Math.floor(i / 3));

// The bars' labels: as long as their slot allows (at least LABEL_CHARS), slanted when still wider than it, so
// that neighbours do not overlap; a slanted label ends at its tick and reaches down to the left.
function barLabels(width) {
  const slot = (width - 70) / shown.length;
  const limit = Math.min(MAX_LABEL_CHARS, Math.max(LABEL_CHARS, Math.floor(slot / CHAR_PX)));
  const labels = shown.map(({ label }) => (label.length > limit ? `${label.slice(0, limit - 1)}…` : label));
  const longest = Math.max(...labels.map((label) => label.length)) * CHAR_PX;
  const slanted = longest > slot;
  const angle = (SLANT * Math.PI) / 180;
  return {
    labels,
    rotate: slanted ? SLANT : 0,
    size: slanted ? Math.round(24 + longest * Math.sin(angle)) : 40,
    padLeft: slanted ? Math.max(0, longest * Math.cos(angle) - 60 - slot / 2) : 0,
  };
}

function chartOptions(width, xs) {
  const { bar, text, grid } = colours();
  const font = "13px system-ui, sans-serif";
  const { labels, rotate, size, padLeft } = barLabels(width);
  return {
    width,
    padding: [16, 16, 0, padLeft],
    height: 260,
    legend: { show: false },
    cursor: { show: false },
    select: { show: false },
    scales: {
      x: { time: false, range: [-0.5, shown.length - 0.5] },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.15 : 1] },
    },
    axes: [
      {
        stroke: text,
        font,
        grid: { show: false },
        ticks: { stroke: grid },
        splits: () => xs,
        values: () => labels,
        rotate,
        size,
      },
      {
        stroke: text,
        font,
        size: 60,
        incrs: STEPS,
        grid: { stroke: grid, width: 1 },
        ticks: { stroke: grid },
        values: (_u, splits) => splits.map((split) => compactFormat.format(split)),
      },
    ],
    series: [
      {},
      {
        label: "Total tokens",
        stroke: bar,
        fill: bar,
        width: 0,
        points: { show: false },
        paths: window.uPlot.paths.bars({ size: [0.6, 96] }),
      },
    ],
  };
}

function drawChart() {
  plot?.destroy();
  plot = null;
  chartBox.replaceChildren();
  if (shown.length === 0 || !window.uPlot) return;
  const xs = shown.map((_, index) => index);
  const options = chartOptions(Math.max(chartBox.clientWidth, 240), xs);
  plot = new window.uPlot(options, [xs, shown.map(({ total }) => total)], chartBox);
}

function showGroupLabels(groupBy) {
  for (const label of document.querySelectorAll("[data-group-name]")) label.textContent = GROUPS[groupBy].name;
  for (const label of document.querySelectorAll("[data-group-title]")) label.textContent = GROUPS[groupBy].title;
  chartBox.setAttribute(
    "aria-label",
    `Bar chart of the total tokens per ${GROUPS[groupBy].name}; the table below lists the same numbers`,
  );
}

function checkPeriod() {
  if (!fromInput.value) return { message: "Enter the first day of the period.", param: "from" };
  if (!toInput.value) return { message: "Enter the last day of the period.", param: "to" };
  if (fromInput.value > toInput.value) return { message: "The first day must not be after the last day.", param: "to" };
  return null;
}

async function load() {
  clearErrors(form);
  const problem = checkPeriod();
  if (problem) {
    showError(form, problem);
    return;
  }
  const groupBy = groupSelect.value;
  const since = localMidnight(fromInput.value);
  const until = new Date(localMidnight(toInput.value).getTime() + DAY_MS + 60 * 60 * 1000); // past a DST day too
  until.setHours(0, 0, 0, 0);
  const query = new URLSearchParams({ group_by: groupBy, since: since.toISOString(), until: until.toISOString() });
  status.textContent = "Loading usage…";
  let answer;
  let nameOf;
  try {
    [answer, nameOf] = await Promise.all([get(`/bodhi/v1/usage?${query}`), namesFor(groupBy)]);
  } catch (error) {
    if (handleSessionEnded(error)) return;
    status.textContent = "";
    showError(form, error);
    return;
  }
  const period = `${dayFormat.format(since)} to ${dayFormat.format(localMidnight(toInput.value))}`;
  document.getElementById("usage-period").textContent = `From ${period}`;
  showGroupLabels(groupBy);
  shown = showTable(answer.data, groupBy, nameOf);
  results.hidden = answer.data.length === 0;
  status.textContent = answer.data.length === 0 ? `No usage from ${period}.` : "";
  drawChart();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
groupSelect.addEventListener("change", load);
for (const pick of form.querySelectorAll("[data-days]")) {
  pick.addEventListener("click", () => {
    pickDays(Number(pick.dataset.days));
    load();
  });
}
for (const input of [fromInput, toInput]) input.addEventListener("change", () => markPick(null));

// The chart follows the page: its width, and the colours of the light or dark scheme.
new ResizeObserver(() => {
  if (plot && Math.abs(plot.width - Math.max(chartBox.clientWidth, 240)) > 1) drawChart();
}).observe(chartBox);
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", drawChart);

pickDays(7);
load();
