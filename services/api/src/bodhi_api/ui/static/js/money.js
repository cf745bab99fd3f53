// Money and spending as the account pages show them: US dollars (prices are per million tokens, so a request
// may cost a fraction of a cent: small sums keep two significant digits) and what a budget has spent.
import { h } from "./dom.js";

const cents = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const fractions = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumSignificantDigits: 2 });
const counts = new Intl.NumberFormat("en-US");

export function formatUsd(value) {
  const amount = Number(value);
  return amount === 0 || amount >= 0.01 ? cents.format(amount) : fractions.format(amount);
}

export const formatCount = (value) => counts.format(Number(value));

// What a usage row or a budget's `budget_spent` cost: "$1.20", "$1.20 + 300 tokens unpriced", "300 tokens
// unpriced" (no price set for their models), or "–" when nothing was used.
export function costText({ cost, unpriced_tokens: unpriced }) {
  const parts = [];
  if (cost !== null) parts.push(formatUsd(cost));
  if (unpriced > 0) parts.push(`${formatCount(unpriced)} tokens unpriced`);
  return parts.length > 0 ? parts.join(" + ") : "–";
}

// A budget in a table cell: a meter of the tokens spent this period, and the figures (`label` names the meter
// for a screen reader: "Budget of laptop").
export function budgetCell(limits, label) {
  if (limits.budget_tokens === null) return h("span", { class: "muted" }, "None");
  const spent = limits.budget_spent ?? { tokens: 0, cost: null, unpriced_tokens: 0 };
  const share = Math.min(100, Math.round((100 * Number(spent.tokens)) / limits.budget_tokens));
  const period = limits.budget_period === "day" ? "today" : "this month";
  return h(
    "div",
    { class: "budget" },
    h("span", { class: "budget-figures" }, `${formatCount(spent.tokens)} of ${formatCount(limits.budget_tokens)} tokens ${period}`),
    h("meter", {
      class: "budget-meter",
      min: "0",
      max: String(limits.budget_tokens),
      high: String(Math.floor(limits.budget_tokens * 0.8)),
      optimum: "0",
      value: String(Math.min(Number(spent.tokens), limits.budget_tokens)),
      "aria-label": `${label}: ${share}% spent`,
    }),
    spent.cost !== null || spent.unpriced_tokens > 0
      ? h("span", { class: "budget-cost muted" }, `Cost: ${costText(spent)}`)
      : null,
  );
}
