// The tracker's page: reads the worker's JSON API and draws it with Chart.js.
//
// Routes live in the URL fragment, so every view is a link: "#/" is the overview,
// "#/entity/<slug>" one entity; "?as_of=YYYY-MM-DD" after either redraws from the
// facts known on that date. Text from facts is only ever set as textContent.
"use strict";

(() => {
  const PALETTE = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"];
  const POINT_STYLES = ["circle", "rectRot", "rect", "star", "crossRot", "triangle"];
  const FACTS_PAGE = 500;
  const FACTS_CAP = 5000;
  const REGIME_FACTS = 50;
  const OVERVIEW_ROWS = 100;
  const OVERVIEW_ALERTS = 50;
  const METRICS = {
    tokens_per_day: ["Tokens per day", "tokens/day"],
    tokens_per_month: ["Tokens per month", "tokens/month"],
    mau: ["Monthly active users", "monthly users"],
    wau: ["Weekly active users", "weekly users"],
    dau: ["Daily active users", "daily users"],
  };
  const UNITS = { tokens_per_day: "tokens/day", tokens_per_month: "tokens/month" };
  const STAGES = ["ordered", "scheduled", "delivered"];
  const SEVERITY_ORDER = { critical: 0, warning: 1, info: 2 };
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const significant = new Intl.NumberFormat("en", { maximumSignificantDigits: 3 });
  const ratio = new Intl.NumberFormat("en", { maximumSignificantDigits: 4 });
  const plain = new Intl.NumberFormat("en", { maximumFractionDigits: 2 });
  const percent = new Intl.NumberFormat("en", { style: "percent", maximumFractionDigits: 2, signDisplay: "always" });

  const main = document.getElementById("main");
  const status = document.getElementById("status");
  const form = document.getElementById("as-of-form");
  const asOfInput = document.getElementById("as-of");
  let charts = [];
  let firstRender = true;
  let renders = 0;

  // ---- numbers and dates, as people write them

  /** 23e9 -> "23 B", 5e13 -> "50 T", 20000 -> "20,000". */
  function human(value) {
    const abs = Math.abs(value);
    for (const [factor, suffix] of [[1e12, "T"], [1e9, "B"], [1e6, "M"]]) {
      if (abs >= factor) return `${significant.format(value / factor)} ${suffix}`;
    }
    return plain.format(value);
  }

  function unitText(unit) {
    return UNITS[unit] ?? unit.replaceAll("_", " ");
  }

  /** A reported quantity as written: a point, "about", a range or a single bound, with its unit. */
  function quantityText(q) {
    if (!q) return "";
    const unit = unitText(q.unit);
    const about = q.approx ? "about " : "";
    if (q.value != null) return `${about}${human(q.value)} ${unit}`;
    if (q.low != null && q.high != null) return `${about}${human(q.low)} to ${human(q.high)} ${unit}`;
    if (q.low != null) return `over ${human(q.low)} ${unit}`;
    if (q.high != null) return `under ${human(q.high)} ${unit}`;
    return unit;
  }

  function parseDate(text) {
    const [year, month, day] = String(text).split("-").map(Number);
    return { year, month, day };
  }

  /** "2025" -> "2025", "2025-12" -> "Dec 2025", "2025-12-04" -> "4 Dec 2025"; periods pass through. */
  function dateText(text) {
    if (text == null) return "";
    if (!/^\d{4}(-\d{2}(-\d{2})?)?$/.test(String(text))) return String(text);
    const { year, month, day } = parseDate(text);
    if (!month) return String(year);
    if (!day) return `${MONTHS[month - 1]} ${year}`;
    return `${day} ${MONTHS[month - 1]} ${year}`;
  }

  /** Milliseconds of the start of a partial date: where a chart places it. */
  function dateMs(text) {
    const { year, month, day } = parseDate(text);
    return Date.UTC(year, (month || 1) - 1, day || 1);
  }

  function msText(ms, months) {
    const date = new Date(ms);
    return months >= 12 ? String(date.getUTCFullYear()) : `${MONTHS[date.getUTCMonth()]} ${date.getUTCFullYear()}`;
  }

  /** Ticks on month, quarter or year starts between two instants, at most about eight. */
  function timeTicks(min, max) {
    const start = new Date(min);
    const span = (max - min) / (30.4 * 864e5);
    const step = [1, 2, 3, 6, 12, 24, 60].find((months) => span / months <= 8) ?? 120;
    let year = start.getUTCFullYear();
    let month = start.getUTCMonth();
    month = Math.ceil(month / step) * step;
    if (step >= 12) {
      year = Math.ceil((year + (start.getUTCMonth() || start.getUTCDate() > 1 ? 1 : 0)) / (step / 12)) * (step / 12);
      month = 0;
    }
    const ticks = [];
    for (let ms = Date.UTC(year, month, 1); ms <= max; ms = Date.UTC(year, (month += step), 1)) {
      if (ms >= min) ticks.push({ value: ms });
    }
    return { ticks, step };
  }

  function timeAxis(min, max) {
    // Pad by a month each side so a lone point is not on the edge.
    const lo = min - 31 * 864e5;
    const hi = max + 31 * 864e5;
    const { ticks, step } = timeTicks(lo, hi);
    return {
      type: "linear",
      min: lo,
      max: hi,
      title: { display: true, text: "date the fact applies to" },
      afterBuildTicks: (axis) => {
        axis.ticks = ticks;
      },
      ticks: { callback: (value) => msText(value, step), autoSkip: true, maxRotation: 0 },
    };
  }

  // ---- the API

  class ApiError extends Error {}

  async function getJSON(path, params = {}) {
    const url = new URL(path, location.origin);
    for (const [key, value] of Object.entries(params)) {
      if (value != null && value !== "") url.searchParams.set(key, value);
    }
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    if (!response.ok) {
      let reason = response.statusText;
      try {
        reason = (await response.json()).error ?? reason;
      } catch {
        // not JSON: keep the status text
      }
      throw new ApiError(`${url.pathname}: ${response.status} ${reason}`);
    }
    return response.json();
  }

  /** Every fact matching ``params``, following cursors up to FACTS_CAP. */
  async function allFacts(params) {
    const facts = [];
    let cursor = null;
    do {
      const page = await getJSON("/v1/facts", { ...params, limit: FACTS_PAGE, cursor });
      facts.push(...page.facts);
      cursor = page.next_cursor;
    } while (cursor && facts.length < FACTS_CAP);
    return facts;
  }

  /**
   * The facts of an entity's charts: its usage figures and investments, and the chips it buys. Each read
   * names the subject its facts are folded under, so the worker reads one fold group, not its whole state.
   */
  async function entityFacts(slug, known) {
    const parts = await Promise.all([
      allFacts({ type: "usage.reported", entity: slug, include_retracted: "true", ...known }),
      allFacts({ type: "investment.announced", entity: slug, include_retracted: "true", ...known }),
      allFacts({ type: "chip_delivery.reported", buyer: slug, include_retracted: "true", ...known }),
    ]);
    return parts.flat();
  }

  // ---- building the document

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (value == null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child == null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function safeUrl(text) {
    try {
      const url = new URL(text);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch {
      return null;
    }
  }

  function href(view, asOf) {
    return `#/${view}${asOf ? `?as_of=${encodeURIComponent(asOf)}` : ""}`;
  }

  function entityLink(slug, asOf) {
    return el("a", { href: href(`entity/${encodeURIComponent(slug)}`, asOf) }, slug);
  }

  function table(caption, headings, rows, options = {}) {
    const body = el("tbody", {}, rows);
    const head = el("thead", {}, el("tr", {}, headings.map((h) => el("th", { scope: "col" }, h))));
    return el("div", { class: "table-wrap" }, el("table", { class: options.class }, el("caption", {}, caption), head, body));
  }

  function cell(label, content, cls) {
    return el("td", { "data-label": label, class: cls }, content);
  }

  function severity(value) {
    return el("span", { class: `severity severity-${value}` }, value);
  }

  function section(id, title, ...children) {
    return el("section", { "aria-labelledby": id }, el("h2", { id }, title), children);
  }

  // ---- facts behind a chart

  function factFigure(fact) {
    switch (fact.type) {
      case "usage.reported":
        return quantityText(fact.value);
      case "investment.announced":
        return `${quantityText(fact.amount)} for ${fact.period}`;
      case "chip_delivery.reported": {
        const units = fact.units ? `${quantityText(fact.units)} of ` : "";
        const parts = [`${units}${fact.product} from ${fact.vendor}`, fact.stage];
        if (fact.unit_price) parts.push(`${quantityText(fact.unit_price)} each`);
        if (fact.order_value) parts.push(`order worth ${quantityText(fact.order_value)}`);
        if (fact.expected_on) parts.push(`expected ${dateText(fact.expected_on)}`);
        return parts.join(", ");
      }
      case "export_rule.changed": {
        const effective = fact.effective_on ? `, effective ${dateText(fact.effective_on)}` : "";
        const conditions = fact.conditions ? ` (${fact.conditions})` : "";
        return `${fact.authority} ${fact.direction} ${fact.product} to ${fact.destination}${conditions}${effective}`;
      }
      default:
        return fact.type;
    }
  }

  function sourceCell(source) {
    const url = source.url && safeUrl(source.url);
    return url ? el("a", { href: url, rel: "noopener noreferrer" }, source.name) : source.name;
  }

  function factsTable(caption, facts) {
    if (!facts.length) return el("p", { class: "note" }, `${caption}: none.`);
    const sorted = [...facts].sort((a, b) => dateMs(a.occurred_on) - dateMs(b.occurred_on) || a.id.localeCompare(b.id));
    const rows = sorted.map((fact) => {
      const retracted = fact.retracted_by;
      const state = retracted
        ? el("span", { class: "badge" }, `retracted${retracted.known_on ? ` on ${dateText(retracted.known_on)}` : ""}`)
        : fact.status;
      const figure = factFigure(fact);
      return el(
        "tr",
        { class: retracted ? "retracted" : null, dataset: { factId: fact.id } },
        cell("Date", dateText(fact.occurred_on), "date"),
        cell("Fact", retracted ? el("del", { class: "figure" }, figure) : el("span", { class: "figure" }, figure)),
        cell("Status", state),
        cell("Source", sourceCell(fact.source)),
        cell("Quote", fact.source.quote ? el("blockquote", {}, fact.source.quote) : "—"),
        cell("Known on", dateText(fact.known_on ?? fact.reported_on ?? fact.occurred_on), "date"),
      );
    });
    return table(caption, ["Date", "Fact", "Status", "Source", "Quote", "Known on"], rows, { class: "facts" });
  }

  // ---- charts

  /** Hatching for the second and third series of a bar chart: the difference does not rest on colour alone. */
  function fill(color, kind) {
    if (!kind) return color;
    const tile = document.createElement("canvas");
    tile.width = tile.height = 8;
    const pen = tile.getContext("2d");
    pen.fillStyle = "#fff";
    pen.fillRect(0, 0, 8, 8);
    pen.strokeStyle = color;
    pen.fillStyle = color;
    pen.lineWidth = 2;
    if (kind === "hatch") {
      pen.beginPath();
      pen.moveTo(0, 8);
      pen.lineTo(8, 0);
      pen.stroke();
    } else {
      pen.fillRect(2, 2, 3, 3);
    }
    return pen.createPattern(tile, "repeat");
  }

  function figure(title, summary, config, short) {
    const canvas = el("canvas", { role: "img", "aria-label": `${title}. ${summary}` });
    const holder = el("div", { class: short ? "chart short" : "chart" }, canvas);
    const node = el("figure", {}, el("figcaption", {}, title), holder);
    config.options = {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      ...config.options,
      plugins: { legend: { labels: { usePointStyle: true } }, ...config.options?.plugins },
    };
    // Drawn once the figure is in the document, so Chart.js can size it.
    node.draw = () => charts.push(new Chart(canvas, config));
    return node;
  }

  function usageChart(title, series, factsById) {
    const points = [];
    const datasets = series.map((one, index) => {
      const color = PALETTE[index % PALETTE.length];
      const data = one.points.map((point) => {
        const fact = point.facts.map((id) => factsById.get(id)).find(Boolean);
        points.push(`${dateText(point.date)}: ${fact ? quantityText(fact.value) : human(point.value)}`);
        return { x: dateMs(point.date), y: point.value, label: dateText(point.date), fact };
      });
      return {
        label: series.length > 1 ? one.labels.entity : title,
        data,
        borderColor: color,
        backgroundColor: color,
        // A bound ("over 30 T") is a triangle whatever the series: the figure is at least (or at most) that.
        pointStyle: data.map((p) => (p.fact && p.fact.value.value == null ? "triangle" : POINT_STYLES[index % POINT_STYLES.length])),
        pointRadius: 6,
        pointHoverRadius: 8,
        borderDash: index ? [6, 4] : [],
      };
    });
    const all = datasets.flatMap((d) => d.data.map((p) => p.x));
    const bounded = datasets.some((d) => d.data.some((p) => p.fact && p.fact.value.value == null));
    const node = figure(
      title,
      points.length ? `Points by event time: ${points.join("; ")}.` : "No point.",
      {
        type: "line",
        data: { datasets },
        options: {
          scales: {
            x: timeAxis(Math.min(...all), Math.max(...all)),
            y: { beginAtZero: true, ticks: { callback: (value) => human(value) } },
          },
          plugins: {
            legend: { display: datasets.length > 1 },
            tooltip: {
              callbacks: {
                title: (items) => items[0].raw.label,
                label: (item) => (item.raw.fact ? quantityText(item.raw.fact.value) : human(item.raw.y)),
              },
            },
          },
        },
      },
    );
    if (bounded) node.append(el("p", { class: "note" }, "A triangle marks a bound: the source gave only a floor (or a ceiling)."));
    return node;
  }

  function barChart(title, labels, datasets, unit, short) {
    const summary = datasets
      .map((d) => `${d.label}: ${labels.map((l, i) => (d.data[i] != null ? `${l} ${human(d.data[i])} ${unit}` : null)).filter(Boolean).join(", ")}`)
      .join("; ");
    const kinds = [null, "hatch", "dots"];
    return figure(
      title,
      summary,
      {
        type: "bar",
        data: {
          labels,
          datasets: datasets.map((d, index) => ({
            ...d,
            backgroundColor: fill(PALETTE[index % PALETTE.length], kinds[index % kinds.length]),
            borderColor: PALETTE[index % PALETTE.length],
            borderWidth: 2,
            maxBarThickness: 96,
          })),
        },
        options: {
          scales: { y: { beginAtZero: true, ticks: { callback: (value) => human(value) }, title: { display: true, text: unit } } },
          plugins: {
            legend: { display: datasets.length > 1, labels: { usePointStyle: false } },
            tooltip: { callbacks: { label: (item) => `${item.dataset.label}: ${human(item.raw)} ${unit}` } },
          },
        },
      },
      short,
    );
  }

  function regimeChart(series, until) {
    const names = series.map((s) => `${s.labels.authority} · ${s.labels.product} → ${s.labels.destination}`);
    const spans = { loosened: [], tightened: [] };
    const told = [];
    series.forEach((one, index) => {
      const points = [...one.points].sort((a, b) => dateMs(a.date) - dateMs(b.date));
      points.forEach((point, i) => {
        const start = dateMs(point.date);
        const end = i + 1 < points.length ? dateMs(points[i + 1].date) : Math.max(until, start + 31 * 864e5);
        const state = point.value > 0 ? "loosened" : "tightened";
        spans[state].push({ x: [start, end], y: names[index], from: dateText(point.date) });
        told.push(`${names[index]}: ${state} from ${dateText(point.date)}`);
      });
    });
    const starts = [...spans.loosened, ...spans.tightened].map((s) => s.x[0]);
    const ends = [...spans.loosened, ...spans.tightened].map((s) => s.x[1]);
    const axis = timeAxis(Math.min(...starts), Math.max(...ends));
    return figure(
      "Export regimes over time",
      `${told.join("; ")}.`,
      {
        type: "bar",
        data: {
          labels: names,
          datasets: [
            { label: "loosened", data: spans.loosened, backgroundColor: fill(PALETTE[2]), borderColor: PALETTE[2], borderWidth: 2 },
            { label: "tightened", data: spans.tightened, backgroundColor: fill(PALETTE[1], "hatch"), borderColor: PALETTE[1], borderWidth: 2 },
          ],
        },
        options: {
          indexAxis: "y",
          grouped: false,
          datasets: { bar: { grouped: false, barPercentage: 0.6 } },
          scales: {
            x: axis,
            // Authority on one line, product and destination on the next: narrow screens keep the whole name.
            y: { ticks: { autoSkip: false, callback: (value, index) => names[index].split(" · ") } },
          },
          plugins: {
            legend: { labels: { usePointStyle: false } },
            tooltip: { callbacks: { label: (item) => `${item.dataset.label} from ${item.raw.from}` } },
          },
        },
      },
      names.length < 3,
    );
  }

  // ---- signals, grouped for reading

  function summaryLines(signals) {
    const lines = [];
    const find = (name, test) => signals.find((s) => s.name === name && test(s.labels));
    for (const usage of signals.filter((s) => s.name === "market_usage")) {
      const metric = usage.labels.metric;
      const growth = find("market_usage_growth_monthly_ratio", (l) => l.metric === metric);
      const rate = growth ? ` (${percent.format(growth.value)} a month)` : "";
      lines.push([METRICS[metric]?.[0] ?? metric, `${human(usage.value)} ${METRICS[metric]?.[1] ?? unitText(metric)}${rate}`]);
    }
    for (const investment of signals.filter((s) => s.name === "market_investment_usd")) {
      lines.push([`Investment ${investment.labels.period}`, `${human(investment.value)} USD`]);
    }
    const units = signals.filter((s) => s.name === "market_chip_units");
    for (const stage of STAGES) {
      const total = units.filter((s) => s.labels.stage === stage).reduce((sum, s) => sum + s.value, 0);
      if (total) lines.push([`Chips ${stage}`, `${human(total)} units`]);
    }
    const value = signals.filter((s) => s.name === "market_chip_order_value_usd").reduce((sum, s) => sum + s.value, 0);
    if (value) lines.push(["Chips ordered, value", `${human(value)} USD`]);
    for (const found of signals.filter((s) => s.name === "market_peer_ratio")) {
      lines.push([`Against ${found.labels.peer} (${found.labels.metric})`, `ratio ${ratio.format(found.value)}`]);
    }
    for (const regime of signals.filter((s) => s.name === "market_export_rule_state")) {
      const l = regime.labels;
      lines.push([`Export ${l.product} → ${l.destination}`, regime.value > 0 ? "loosened" : "tightened"]);
    }
    return lines;
  }

  function alertsTable(alerts, asOf, total = alerts.length) {
    if (!alerts.length) return el("p", { class: "note" }, "No active alert.");
    const sorted = [...alerts].sort(
      (a, b) => (SEVERITY_ORDER[a.severity] ?? 9) - (SEVERITY_ORDER[b.severity] ?? 9) || String(b.since).localeCompare(String(a.since)),
    );
    const rows = sorted.map((alert) => {
      const slugs = [...new Set(["entity", "buyer", "authority", "peer"].map((k) => alert.labels[k]).filter(Boolean))];
      return el(
        "tr",
        { dataset: { rule: alert.rule } },
        cell("Severity", severity(alert.severity)),
        cell("Alert", alert.annotations?.summary ?? alert.rule),
        cell("Rule", alert.rule),
        cell("State", alert.state),
        cell("Since", dateText(alert.since), "date"),
        cell("Concerns", slugs.flatMap((slug, i) => [i ? ", " : "", entityLink(slug, asOf)])),
      );
    });
    const caption =
      total > alerts.length ? `The ${alerts.length} most severe of ${total} active alerts` : `${total} active alert${total === 1 ? "" : "s"}`;
    return table(caption, ["Severity", "Alert", "Rule", "State", "Since", "Concerns"], rows, {
      class: "facts",
    });
  }

  // ---- views

  async function overview(asOf) {
    // One read: a page of entities with their latest figures, the most severe alerts, and both counts.
    const first = await getJSON("/v1/overview", { as_of: asOf, limit: OVERVIEW_ROWS, alerts: OVERVIEW_ALERTS });
    const rowsFor = (found) =>
      found.entities.map(({ entity: slug, signals, alerts }) =>
        el(
          "tr",
          { dataset: { entity: slug } },
          cell("Entity", entityLink(slug, asOf)),
          cell(
            "Latest signals",
            el("dl", { class: "signals" }, summaryLines(signals).map(([term, text]) => [el("dt", {}, term), el("dd", {}, text)])),
          ),
          cell("Active alerts", String(alerts), "num"),
        ),
      );
    const captionFor = (found) =>
      found.entities_total > found.entities.length
        ? `The first ${found.entities.length} of ${found.entities_total} entities matching the filter`
        : `${found.entities_total} entities`;
    const entityTable = table(captionFor(first), ["Entity", "Latest signals", "Active alerts"], rowsFor(first), { class: "facts" });
    const filter = el("input", { type: "search", id: "entity-filter", autocomplete: "off", spellcheck: "false" });
    let asked = 0;
    let pause = null;
    filter.addEventListener("input", () => {
      clearTimeout(pause);
      // Typing asks the worker once it pauses; an answer older than the latest question is dropped.
      pause = setTimeout(async () => {
        const mine = ++asked;
        const found = await getJSON("/v1/overview", { as_of: asOf, q: filter.value.trim().toLowerCase(), limit: OVERVIEW_ROWS, alerts: 1 });
        if (mine !== asked) return;
        entityTable.querySelector("caption").textContent = captionFor(found);
        entityTable.querySelector("tbody").replaceChildren(...rowsFor(found));
      }, 150);
    });
    return [
      el("h1", { tabindex: "-1" }, "Overview"),
      asOfNote(asOf),
      section("alerts-heading", "Active alerts", alertsTable(first.alerts, asOf, first.alerts_total)),
      section(
        "entities-heading",
        "Entities",
        el("p", {}, el("label", { for: "entity-filter" }, "Filter entities "), filter),
        entityTable,
      ),
    ];
  }

  async function entityView(slug, asOf) {
    const known = { as_of: asOf };
    const [{ signals }, chipUnits, orderValues, { alerts }, facts, usage] = await Promise.all([
      getJSON("/v1/signals", { entity: slug, ...known }),
      getJSON("/v1/signals", { name: "market_chip_units", buyer: slug, ...known }),
      getJSON("/v1/signals", { name: "market_chip_order_value_usd", buyer: slug, ...known }),
      getJSON("/v1/alerts", { entity: slug, ...known }),
      entityFacts(slug, known),
      getJSON("/v1/signals/history", { name: "market_usage", entity: slug, ...known }),
    ]);
    const products = [...new Set(facts.filter((f) => f.type === "chip_delivery.reported").map((f) => f.product))];
    const regimeQueries = [{ authority: slug }, ...products.map((product) => ({ product }))];
    const histories = await Promise.all(
      regimeQueries.map((query) => getJSON("/v1/signals/history", { name: "market_export_rule_state", ...query, ...known })),
    );
    const factsById = new Map(facts.map((f) => [f.id, f]));
    const regimes = new Map();
    for (const history of histories) {
      for (const one of history.series) regimes.set(JSON.stringify(one.labels), one);
    }
    const own = [...signals, ...chipUnits.signals, ...orderValues.signals];
    const mine = alerts.filter((a) => ["entity", "buyer", "authority", "peer"].some((k) => a.labels[k] === slug));
    const name = facts.find((f) => f.entity_name)?.entity_name ?? slug;
    const ofType = (type) => facts.filter((f) => f.type === type);
    const parts = [
      el("p", {}, el("a", { href: href("", asOf) }, "← Overview")),
      el("h1", { tabindex: "-1" }, name),
      asOfNote(asOf),
      el("dl", { class: "signals" }, summaryLines(own).map(([term, text]) => [el("dt", {}, term), el("dd", {}, text)])),
      section("alerts-heading", "Active alerts", alertsTable(mine, asOf)),
    ];

    const usageSection = section("usage-heading", "Usage by event time");
    const usageFacts = ofType("usage.reported");
    const metrics = [...new Set([...usage.series.map((s) => s.labels.metric), ...usageFacts.map((f) => f.metric)])].sort();
    for (const metric of metrics) {
      const title = `${METRICS[metric]?.[0] ?? metric} of ${name}`;
      const series = usage.series.filter((s) => s.labels.metric === metric && s.points.length);
      const block = el("div", { class: "metric", dataset: { metric } });
      if (series.length) block.append(usageChart(title, series, factsById));
      else block.append(el("p", { class: "note" }, "No live figure: every fact behind this series is retracted."));
      const what = (METRICS[metric]?.[0] ?? metric).toLowerCase();
      block.append(factsTable(`Facts behind the ${what} of ${name}`, usageFacts.filter((f) => f.metric === metric)));
      usageSection.append(block);
    }
    if (!metrics.length) usageSection.append(el("p", { class: "note" }, "No usage figure."));
    parts.push(usageSection);

    const investment = own.filter((s) => s.name === "market_investment_usd").sort((a, b) => String(a.labels.period).localeCompare(String(b.labels.period)));
    const investSection = section("investment-heading", "Announced investment by period");
    if (investment.length) {
      investSection.append(
        barChart(
          `Announced investment of ${name}, USD`,
          investment.map((s) => String(s.labels.period)),
          [{ label: "latest announced", data: investment.map((s) => s.value) }],
          "USD",
          true,
        ),
      );
    }
    investSection.append(factsTable(`Facts behind the investment of ${name}`, ofType("investment.announced")));
    parts.push(investSection);

    const chipSection = section("chips-heading", "Chips");
    const chipLabels = [...new Set(chipUnits.signals.map((s) => `${s.labels.vendor} ${s.labels.product}`))].sort();
    if (chipLabels.length) {
      const stages = STAGES.filter((stage) => chipUnits.signals.some((s) => s.labels.stage === stage));
      chipSection.append(
        barChart(
          `Chip units of ${name} by stage`,
          chipLabels,
          stages.map((stage) => ({
            label: stage,
            data: chipLabels.map((label) => {
              const found = chipUnits.signals.find((s) => s.labels.stage === stage && `${s.labels.vendor} ${s.labels.product}` === label);
              return found ? found.value : null;
            }),
          })),
          "units",
          true,
        ),
      );
    }
    if (orderValues.signals.length) {
      const labels = orderValues.signals.map((s) => `${s.labels.vendor} ${s.labels.product}`);
      chipSection.append(
        barChart(`Value of chips ordered by ${name}, USD`, labels, [{ label: "order value", data: orderValues.signals.map((s) => s.value) }], "USD", true),
      );
    }
    chipSection.append(factsTable(`Facts behind the chips of ${name}`, ofType("chip_delivery.reported")));
    parts.push(chipSection);

    const regimeSection = section("export-heading", "Export regimes that concern it");
    const liveRegimes = [...regimes.values()].filter((s) => s.points.length);
    if (liveRegimes.length) {
      regimeSection.append(regimeChart(liveRegimes, asOf ? dateMs(asOf) : Date.now()));
    }
    // Every change of every regime of a product is thousands of facts at 200,000 events: the table
    // lists the most recent ones, after the drawn page (docs/performance.md), its place held by a note.
    const regimeTable = el("div", { class: "later" }, el("p", { class: "note" }, "Loading the export-rule changes behind the regimes…"));
    regimeSection.append(regimeTable);
    parts.push(regimeSection);
    parts.later = async () => {
      const found = await Promise.all(
        regimeQueries.map((query) =>
          getJSON("/v1/facts", { type: "export_rule.changed", include_retracted: "true", order: "desc", limit: REGIME_FACTS, ...query, ...known }),
        ),
      );
      const regimeFacts = new Map(found.flatMap((page) => page.facts).map((fact) => [fact.id, fact]));
      const more = found.some((page) => page.next_cursor);
      const caption = more ? `The most recent export-rule changes behind the regimes (${REGIME_FACTS} a query; older ones are in /v1/facts)` : "Export-rule changes behind the regimes";
      regimeTable.replaceChildren(factsTable(caption, [...regimeFacts.values()]));
    };
    return parts;
  }

  function asOfNote(asOf) {
    return el(
      "p",
      { class: "note", id: "as-of-note" },
      asOf ? `As of ${dateText(asOf)}: only facts and retractions known by then.` : "Now: every fact the worker knows.",
    );
  }

  // ---- routing

  function route() {
    const [path, query] = location.hash.replace(/^#/, "").split("?");
    const asOf = new URLSearchParams(query ?? "").get("as_of") || null;
    const match = /^\/entity\/([^/]+)$/.exec(path ?? "");
    return { entity: match ? decodeURIComponent(match[1]) : null, asOf };
  }

  async function render() {
    const mine = ++renders;
    const { entity, asOf } = route();
    asOfInput.value = asOf && /^\d{4}-\d{2}-\d{2}$/.test(asOf) ? asOf : "";
    main.setAttribute("aria-busy", "true");
    document.body.dataset.state = "loading";
    let parts;
    try {
      parts = entity ? await entityView(entity, asOf) : await overview(asOf);
    } catch (error) {
      parts = [el("h1", { tabindex: "-1" }, "Something went wrong"), el("p", { class: "error", role: "alert" }, error.message)];
    }
    for (const chart of charts) chart.destroy();
    charts = [];
    main.replaceChildren(...parts);
    for (const node of main.querySelectorAll("figure")) node.draw?.();
    document.title = `${entity ?? "Overview"}${asOf ? ` as of ${asOf}` : ""} · AI-infrastructure tracker`;
    status.textContent = `${entity ?? "Overview"} loaded${asOf ? `, as of ${dateText(asOf)}` : ""}.`;
    main.setAttribute("aria-busy", "false");
    performance.mark("tracker:drawn"); // what the page-load measurement reads (docs/performance.md)
    if (parts.later) {
      try {
        await parts.later();
      } catch (error) {
        main.append(el("p", { class: "error", role: "alert" }, error.message));
      }
    }
    if (mine !== renders) return; // the reader went elsewhere meanwhile
    performance.mark("tracker:complete");
    document.body.dataset.state = main.querySelector(".error") ? "error" : "ready";
    if (!firstRender) main.querySelector("h1")?.focus?.();
    firstRender = false;
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const { entity } = route();
    location.hash = href(entity ? `entity/${encodeURIComponent(entity)}` : "", asOfInput.value || null);
  });
  document.getElementById("as-of-clear").addEventListener("click", () => {
    const { entity } = route();
    location.hash = href(entity ? `entity/${encodeURIComponent(entity)}` : "", null);
  });
  window.addEventListener("hashchange", render);
  Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  Chart.defaults.color = "#1b1f24";
  render();
})();
