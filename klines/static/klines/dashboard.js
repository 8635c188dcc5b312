/*
 * binancews live dashboard.
 *
 * Connects to the websocket on this page's own origin (ws:// or wss:// to match
 * http:// or https://). The server sends one frame per coin on connect and the
 * coin's full frame again whenever a new close is stored:
 *   {"coin": "BTCUSDT", "values": [closes], "operations": ["BUY"|"SELL"], "time": ["HH:MM"]}
 * Each frame replaces its coin's panel. Charts are hand-written SVG, drawn at the
 * chart's real pixel size and redrawn when it is resized.
 * When the connection drops the page reconnects with exponential backoff.
 */
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;

  const panels = new Map(); // coin -> {element, payload}
  const statusElement = document.getElementById("status");
  let socket = null;
  let attempt = 0;
  let retryTimer = null;

  // ---- payloads ------------------------------------------------------------

  function isPayload(data) {
    if (data === null || typeof data !== "object" || typeof data.coin !== "string") return false;
    const { values, operations, time } = data;
    if (!Array.isArray(values) || !Array.isArray(operations) || !Array.isArray(time)) return false;
    if (operations.length !== values.length || time.length !== values.length) return false;
    return (
      values.every((v) => typeof v === "number" && Number.isFinite(v)) &&
      operations.every((op) => op === "BUY" || op === "SELL") &&
      time.every((t) => typeof t === "string")
    );
  }

  /** Digits after the decimal point in the shortest text of a number (1e-7 -> 7). */
  function decimalsOf(value) {
    const match = /^-?\d+(?:\.(\d+))?(?:e([+-]\d+))?$/i.exec(String(value));
    if (!match) return 0;
    const fraction = match[1] ? match[1].length : 0;
    return Math.max(0, fraction - (match[2] ? Number(match[2]) : 0));
  }

  /** Prices of one coin all shown with as many decimals as the most precise close. */
  function priceFormat(values) {
    const digits = Math.min(10, Math.max(0, ...values.map(decimalsOf)));
    return new Intl.NumberFormat("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
  }

  function describeChange(values, format) {
    if (values.length < 2) return { text: "first close", direction: "flat" };
    const last = values[values.length - 1];
    const previous = values[values.length - 2];
    const change = last - previous;
    const direction = change > 0 ? "up" : change < 0 ? "down" : "flat";
    const sign = { up: "+", down: "−", flat: "" }[direction];
    const arrow = { up: "▲", down: "▼", flat: "■" }[direction];
    const percent = previous === 0 ? 0 : Math.abs((change / previous) * 100);
    // Small moves keep a significant digit instead of reading "0.00%".
    const percentText =
      percent === 0 || percent >= 0.01 ? percent.toFixed(2) : percent >= 0.001 ? percent.toFixed(3) : "<0.001";
    return {
      text: `${arrow} ${sign}${format.format(Math.abs(change))} (${sign}${percentText}%)`,
      direction,
    };
  }

  // ---- drawing -------------------------------------------------------------

  function svg(name, attributes, parent) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
    if (parent) parent.appendChild(node);
    return node;
  }

  function text(name, attributes, content, parent) {
    const node = svg(name, attributes, parent);
    node.textContent = content;
    return node;
  }

  function triangle(x, y, up) {
    const h = 6;
    const w = 5.5;
    return up
      ? `M${x},${y - h} L${x + w},${y + h * 0.7} L${x - w},${y + h * 0.7} Z`
      : `M${x},${y + h} L${x + w},${y - h * 0.7} L${x - w},${y - h * 0.7} Z`;
  }

  /** Rendered width of an SVG text (measured once per class and length, in a hidden SVG). */
  const widths = new Map();
  let ruler = null;
  function textWidth(className, content) {
    const key = `${className}|${content.replace(/\d/g, "0")}`;
    if (!widths.has(key)) {
      if (!ruler) {
        ruler = svg("svg", { class: "ruler", "aria-hidden": "true" }, document.body);
        svg("text", {}, ruler);
      }
      const probe = ruler.firstChild;
      probe.setAttribute("class", className);
      probe.textContent = content.replace(/\d/g, "0");
      widths.set(key, probe.getComputedTextLength());
    }
    return widths.get(key);
  }

  function drawChart(container, payload, format, change) {
    const { values, operations, time } = payload;
    const width = container.clientWidth || 320;
    const height = container.clientHeight || 180;
    // Bands above the high line and below the low line hold their price labels;
    // the bottom strip holds the time ticks.
    const margin = { top: 22, right: 4, bottom: 22 + 24, left: 4 };
    const plotWidth = Math.max(40, width - margin.left - margin.right);
    const plotTop = margin.top;
    const plotBottom = height - margin.bottom;
    const low = Math.min(...values);
    const high = Math.max(...values);
    const flat = high === low;
    const slot = plotWidth / values.length;
    const x = (i) => margin.left + slot * (i + 0.5);
    const y = (v) => (flat ? (plotTop + plotBottom) / 2 : plotBottom - ((v - low) / (high - low)) * (plotBottom - plotTop));
    const labels = values.map((v) => format.format(v));
    const last = values.length - 1;

    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
      "aria-label":
        `${payload.coin}: ${values.length} closes from ${time[0]} to ${time[last]}, ` +
        `latest ${labels[last]}, change ${change.text.replace(/^\S+ /, "")}`,
    });
    container.replaceChildren(root);

    // Lines at the highest and lowest close, labelled in the bands outside the plot.
    const right = margin.left + plotWidth;
    svg("line", { class: "grid-line", x1: margin.left, x2: right, y1: y(high), y2: y(high) }, root);
    const highLabel = flat ? format.format(high) : `highest close ${format.format(high)}`;
    text("text", { class: "axis", x: margin.left, y: y(high) - 9 }, highLabel, root);
    if (!flat) {
      svg("line", { class: "grid-line", x1: margin.left, x2: right, y1: y(low), y2: y(low) }, root);
      text("text", { class: "axis", x: margin.left, y: y(low) + 19 }, `lowest close ${format.format(low)}`, root);
    }

    // Area and line through the closes, and a dashed line at the latest close.
    const coordinates = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    if (values.length > 1) {
      const area = `M${x(0).toFixed(1)},${plotBottom + 8} L${coordinates.join(" L")} L${x(last).toFixed(1)},${plotBottom + 8} Z`;
      svg("path", { class: "price-area", d: area }, root);
      svg("polyline", { class: "price-line", points: coordinates.join(" ") }, root);
    }
    svg("line", { class: `last-line ${change.direction}`, x1: x(last), x2: right, y1: y(values[last]), y2: y(values[last]) }, root);

    // One marker per close, coloured and shaped by its operation.
    values.forEach((v, i) => {
      const buy = operations[i] === "BUY";
      const marker = svg("path", { class: `point ${buy ? "buy" : "sell"}`, d: triangle(x(i), y(v), buy) }, root);
      text("title", {}, `${time[i]} close ${labels[i]} ${operations[i]}`, marker);
    });

    // Time ticks: as many as fit, counted back from the latest.
    const every = Math.max(1, Math.ceil((textWidth("tick", time[last]) + 4) / slot));
    time.forEach((t, i) => {
      if ((last - i) % every === 0) text("text", { class: "tick", x: x(i), y: height - 7 }, t, root);
    });
  }

  function renderPanel(coin) {
    const panel = panels.get(coin);
    const { element, payload } = panel;
    const part = (role) => element.querySelector(`[data-role="${role}"]`);
    const rows = part("table").tBodies[0];
    element.dataset.points = String(payload ? payload.values.length : 0);
    if (!payload || payload.values.length === 0) {
      element.dataset.state = "empty";
      part("close").textContent = "—";
      part("change").textContent = "";
      part("change").className = "change";
      part("as-of").textContent = "\u00a0";
      const waiting = document.createElement("p");
      waiting.className = "waiting";
      waiting.textContent = "Waiting for data…";
      part("chart").replaceChildren(waiting);
      rows.replaceChildren();
      return;
    }
    const { values, operations, time } = payload;
    const format = priceFormat(values);
    const change = describeChange(values, format);
    element.dataset.state = "ready";
    part("close").textContent = format.format(values[values.length - 1]);
    part("change").textContent = change.text;
    part("change").className = `change ${change.direction}`;
    part("as-of").textContent = `close of the ${time[time.length - 1]} kline`;
    drawChart(part("chart"), payload, format, change);
    rows.replaceChildren(
      ...values.map((v, i) => {
        const row = document.createElement("tr");
        for (const cell of [time[i], format.format(v), operations[i]]) {
          row.appendChild(document.createElement("td")).textContent = cell;
        }
        return row;
      }),
    );
  }

  function onFrame(event) {
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      console.warn("binancews: ignored a frame that is not JSON");
      return;
    }
    if (!isPayload(data)) {
      console.warn("binancews: ignored a malformed frame", data);
      return;
    }
    if (!panels.has(data.coin)) return; // a coin this page was not rendered for
    panels.get(data.coin).payload = data;
    renderPanel(data.coin);
  }

  // ---- connection ----------------------------------------------------------

  function setStatus(state, message) {
    statusElement.dataset.state = state;
    statusElement.querySelector(".status-text").textContent = message;
    document.body.dataset.connection = state;
  }

  function feedUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/`;
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    setStatus("connecting", attempt === 0 ? "Connecting…" : `Reconnecting (attempt ${attempt + 1})…`);
    const current = new WebSocket(feedUrl());
    socket = current;
    current.addEventListener("open", () => setStatus("live", "Live"));
    current.addEventListener("message", (event) => {
      attempt = 0; // the link is healthy: the next drop starts the backoff afresh
      onFrame(event);
    });
    current.addEventListener("close", () => {
      if (socket === current) scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    socket = null;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt) * (0.8 + Math.random() * 0.4);
    attempt += 1;
    setStatus("offline", `Disconnected · retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
    retryTimer = setTimeout(connect, delay);
  }

  // Back online (laptop wakes, network returns): retry now instead of waiting out the backoff.
  window.addEventListener("online", () => {
    if (retryTimer !== null) connect();
  });

  // ---- start ---------------------------------------------------------------

  for (const element of document.querySelectorAll(".panel[data-coin]")) {
    panels.set(element.dataset.coin, { element, payload: null });
  }
  // Charts are drawn at their real pixel size: redraw one when its width changes.
  const drawnWidth = new WeakMap();
  const resized = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const width = Math.round(entry.contentRect.width);
      if (drawnWidth.get(entry.target) === width) continue;
      drawnWidth.set(entry.target, width);
      const coin = entry.target.closest(".panel").dataset.coin;
      if (panels.get(coin).payload) renderPanel(coin);
    }
  });
  for (const { element } of panels.values()) resized.observe(element.querySelector('[data-role="chart"]'));
  connect();
})();
