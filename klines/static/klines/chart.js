/*
 * binancews chart page: candlesticks and volume of one symbol and interval,
 * drawn with TradingView's lightweight-charts (vendored, Apache-2.0).
 *
 * History: the service's own Binance-compatible GET /fapi/v1/klines, newest
 * page first; scrolling near the left edge asks for the page before the oldest
 * bar (endTime = oldest open time - 1) until a short page says the record starts.
 * Live: the Binance-protocol stream /market/ws/<symbol>@kline_<interval>. An
 * event with k.x=false updates the last bar in place; k.x=true closes it, and
 * the next event starts a new bar. The link reconnects with backoff (1 s
 * doubling to 30 s) and, once back, asks REST for every kline closed since the
 * newest closed bar, so no close is missed.
 * Times: lightweight-charts shows UTC, so each bar's time is shifted by the
 * configured zone's offset at that instant (Intl.DateTimeFormat).
 * Holes in the record are whitespace points (a break, never interpolated) with a marker.
 * window.binancewsChart exposes the chart objects: a test and debugging hook.
 */
"use strict";

(() => {
  const LWC = window.LightweightCharts;
  const page = document.getElementById("chart-page");
  const SYMBOL = page.dataset.symbol;
  const INTERVAL = page.dataset.interval;
  const INTERVAL_MS = Number(page.dataset.intervalMs);
  const ZONE = page.dataset.timezone;
  const PAGE_SIZE = Number(page.dataset.pageSize);
  const MAX_HOLE_SLOTS = Number(page.dataset.maxHoleSlots);
  const OLDER_WITHIN_BARS = 30; // load the previous page when the view comes this close to the first bar
  const BACKOFF_FIRST_MS = 1000;
  const BACKOFF_MAX_MS = 30000;

  const container = document.getElementById("chart");
  const statusElement = document.getElementById("status");
  const historyElement = document.getElementById("history");
  const readout = document.getElementById("readout");

  const klines = new Map(); // open time (ms) -> {openTime, open, high, low, close, volume, trades, closed}
  let openTimes = []; // sorted
  let timeToOpen = new Map(); // chart time (s) -> open time (ms); holes included
  let lastChartTime = -Infinity;
  let holes = [];
  let reachedStart = false;
  let loadingOlder = false;
  let initialLoaded = false;
  let syncAfterLoad = false;

  // ---- time zone -----------------------------------------------------------

  const zoneParts = new Intl.DateTimeFormat("en-US", {
    timeZone: ZONE,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
  const offsets = new Map(); // 15-minute slot -> offset (ms); zones change offset only on such boundaries

  function parts(ms) {
    const out = {};
    for (const { type, value } of zoneParts.formatToParts(new Date(ms))) out[type] = value;
    return out;
  }

  function zoneOffsetMs(ms) {
    const slot = Math.floor(ms / 900000);
    if (!offsets.has(slot)) {
      const at = slot * 900000;
      const p = parts(at);
      offsets.set(slot, Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second) - at);
    }
    return offsets.get(slot);
  }

  /** A bar's time for the chart: the zone's wall-clock time written as if it were UTC (seconds). */
  function shiftedSeconds(ms) {
    return Math.floor((ms + zoneOffsetMs(ms)) / 1000);
  }

  function zoneText(ms) {
    const p = parts(ms);
    return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute}`;
  }

  // ---- klines --------------------------------------------------------------

  /** A /fapi/v1/klines row: [openTime, "o", "h", "l", "c", "v", closeTime, "q", trades, ...]. */
  function fromRow(row) {
    return {
      openTime: row[0],
      open: row[1],
      high: row[2],
      low: row[3],
      close: row[4],
      volume: row[5],
      trades: row[8],
      closed: true,
    };
  }

  /** The k object of a Binance kline event. */
  function fromEvent(k) {
    return { openTime: k.t, open: k.o, high: k.h, low: k.l, close: k.c, volume: k.v, trades: k.n, closed: k.x };
  }

  function isKlineEvent(event) {
    const k = event && event.e === "kline" ? event.k : null;
    return k !== null && typeof k === "object" && k.s === SYMBOL && k.i === INTERVAL && Number.isFinite(k.t);
  }

  function decimalsOf(text) {
    const fraction = String(text).split(".")[1] || "";
    return fraction.replace(/0+$/, "").length;
  }

  // ---- chart ---------------------------------------------------------------

  const dark = window.matchMedia("(prefers-color-scheme: dark)").matches;
  const colors = dark
    ? { bg: "#171c23", text: "#e8edf3", grid: "#27303b", up: "#34c46a", down: "#f0605d", hole: "#9aa7b6" }
    : { bg: "#ffffff", text: "#14181f", grid: "#e2e7ee", up: "#15803d", down: "#c62828", hole: "#566474" };

  const chart = LWC.createChart(container, {
    autoSize: true,
    layout: {
      background: { type: "solid", color: colors.bg },
      textColor: colors.text,
      attributionLogo: true, // the link to TradingView the licence's NOTICE asks for
      panes: { separatorColor: colors.grid },
    },
    grid: { vertLines: { color: colors.grid }, horzLines: { color: colors.grid } },
    timeScale: { timeVisible: true, secondsVisible: false, rightOffset: 4 },
    crosshair: { mode: LWC.CrosshairMode.Normal },
  });
  const candles = chart.addSeries(LWC.CandlestickSeries, {
    upColor: colors.up,
    downColor: colors.down,
    borderVisible: false,
    wickUpColor: colors.up,
    wickDownColor: colors.down,
  });
  const volumes = chart.addSeries(LWC.HistogramSeries, { priceFormat: { type: "volume" }, priceLineVisible: false }, 1);
  chart.panes()[0].setStretchFactor(3);
  chart.panes()[1].setStretchFactor(1);
  const markers = LWC.createSeriesMarkers(candles, []);

  function candlePoint(k, time) {
    return { time, open: +k.open, high: +k.high, low: +k.low, close: +k.close };
  }

  function volumePoint(k, time) {
    return { time, value: +k.volume, color: +k.close >= +k.open ? `${colors.up}80` : `${colors.down}80` };
  }

  /** The next chart time: shifted, and strictly after the previous one (a DST fall-back repeats wall-clock hours). */
  function nextTime(ms, previous) {
    return Math.max(shiftedSeconds(ms), previous + 1);
  }

  /** Draw every known kline, with whitespace for the intervals missing between them. */
  function redraw() {
    openTimes = [...klines.keys()].sort((a, b) => a - b);
    const candleData = [];
    const volumeData = [];
    timeToOpen = new Map();
    holes = [];
    let previous = -Infinity;
    let previousOpen = null;
    for (const openTime of openTimes) {
      if (previousOpen !== null) {
        const missing = Math.round((openTime - previousOpen) / INTERVAL_MS) - 1;
        for (let i = 1; i <= Math.min(missing, MAX_HOLE_SLOTS); i += 1) {
          previous = nextTime(previousOpen + i * INTERVAL_MS, previous);
          candleData.push({ time: previous });
          volumeData.push({ time: previous });
          timeToOpen.set(previous, previousOpen + i * INTERVAL_MS);
        }
        if (missing > 0) holes.push({ from: previousOpen + INTERVAL_MS, missing, nextTime: null });
      }
      const k = klines.get(openTime);
      previous = nextTime(openTime, previous);
      if (holes.length && holes[holes.length - 1].nextTime === null) holes[holes.length - 1].nextTime = previous;
      candleData.push(candlePoint(k, previous));
      volumeData.push(volumePoint(k, previous));
      timeToOpen.set(previous, openTime);
      previousOpen = openTime;
    }
    lastChartTime = previous;
    candles.setData(candleData);
    volumes.setData(volumeData);
    markers.setMarkers(
      holes.map((hole) => ({
        time: hole.nextTime,
        position: "aboveBar",
        shape: "square",
        color: colors.hole,
        text: `hole: ${hole.missing} missing`,
      })),
    );
    container.dataset.bars = String(openTimes.length);
    showReadout(null);
  }

  /** One kline from the stream: in place if it is the last bar, a new bar if it follows it. */
  function applyLive(k) {
    const last = openTimes[openTimes.length - 1];
    klines.set(k.openTime, k);
    if (last === undefined || k.openTime < last || k.openTime > last + INTERVAL_MS) {
      redraw(); // first bar, an old one, or a hole before it: draw it all again
      return;
    }
    let time = lastChartTime;
    if (k.openTime !== last) {
      time = nextTime(k.openTime, lastChartTime);
      openTimes.push(k.openTime);
      timeToOpen.set(time, k.openTime);
      lastChartTime = time;
      container.dataset.bars = String(openTimes.length);
    }
    candles.update(candlePoint(k, time));
    volumes.update(volumePoint(k, time));
    if (!crosshairOn) showReadout(null);
  }

  function merge(fetched) {
    for (const k of fetched) klines.set(k.openTime, k);
  }

  // ---- readout -------------------------------------------------------------

  let crosshairOn = false;

  function field(name, value) {
    readout.querySelector(`[data-field="${name}"]`).textContent = value;
  }

  function showReadout(openTime) {
    const shown = openTime ?? openTimes[openTimes.length - 1];
    if (shown === undefined) return;
    const k = klines.get(shown);
    readout.dataset.openTime = String(shown);
    readout.dataset.kind = k ? (k.closed ? "closed" : "open") : "hole";
    field("time", zoneText(shown));
    const values = k
      ? [k.open, k.high, k.low, k.close, k.volume, String(k.trades)]
      : ["hole: no kline recorded", "", "", "", "", ""];
    ["open", "high", "low", "close", "volume", "trades"].forEach((name, i) => field(name, values[i] || "—"));
    if (k) readout.dataset.direction = +k.close >= +k.open ? "up" : "down";
  }

  chart.subscribeCrosshairMove((param) => {
    const openTime = param.time !== undefined ? timeToOpen.get(param.time) : undefined;
    crosshairOn = openTime !== undefined;
    showReadout(crosshairOn ? openTime : null);
  });

  // ---- history -------------------------------------------------------------

  async function fetchPage(bounds) {
    const query = new URLSearchParams({ symbol: SYMBOL, interval: INTERVAL, limit: String(PAGE_SIZE), ...bounds });
    const response = await fetch(`/fapi/v1/klines?${query}`, { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return (await response.json()).map(fromRow);
  }

  function showHistory() {
    if (reachedStart && openTimes.length) {
      historyElement.textContent = `Start of the record: ${zoneText(openTimes[0])}`;
    } else if (!openTimes.length && initialLoaded) {
      historyElement.textContent = "Nothing recorded yet.";
    }
    container.dataset.reachedStart = String(reachedStart);
  }

  async function loadInitial(attempt = 0) {
    try {
      const rows = await fetchPage({});
      merge(rows);
      reachedStart = rows.length < PAGE_SIZE;
      if (rows.length) {
        const digits = Math.min(10, Math.max(...rows.slice(-50).map((k) => decimalsOf(k.close))));
        candles.applyOptions({ priceFormat: { type: "price", precision: digits, minMove: 10 ** -digits } });
      }
      initialLoaded = true;
      redraw();
      container.dataset.state = "ready";
      showHistory();
      if (syncAfterLoad) syncNewest();
    } catch (error) {
      container.dataset.state = "error";
      historyElement.textContent = `Could not load the history (${error.message}); retrying…`;
      setTimeout(() => loadInitial(attempt + 1), Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt));
    }
  }

  async function loadOlder() {
    if (loadingOlder || reachedStart || !openTimes.length) return;
    loadingOlder = true;
    container.dataset.loadingOlder = "true";
    historyElement.textContent = "Loading older klines…";
    try {
      const rows = await fetchPage({ endTime: String(openTimes[0] - 1) });
      reachedStart = rows.length < PAGE_SIZE;
      merge(rows);
      redraw();
      historyElement.textContent = "";
      showHistory();
    } catch (error) {
      historyElement.textContent = `Could not load older klines (${error.message}); scroll to retry.`;
    } finally {
      loadingOlder = false;
      container.dataset.loadingOlder = "false";
    }
    nearLeftEdge(chart.timeScale().getVisibleLogicalRange());
  }

  function nearLeftEdge(range) {
    if (range && range.from < OLDER_WITHIN_BARS) loadOlder();
  }

  chart.timeScale().subscribeVisibleLogicalRangeChange(nearLeftEdge);

  /** Every kline closed since the newest closed bar we hold (after a reconnect: none may be missed). */
  async function syncNewest() {
    if (!initialLoaded) {
      syncAfterLoad = true;
      return;
    }
    syncAfterLoad = false;
    const closed = openTimes.filter((t) => klines.get(t).closed);
    let start = closed.length ? closed[closed.length - 1] + 1 : null;
    try {
      for (;;) {
        const rows = await fetchPage(start === null ? {} : { startTime: String(start) });
        merge(rows);
        if (rows.length < PAGE_SIZE || start === null) break;
        start = rows[rows.length - 1].openTime + 1;
      }
      redraw();
    } catch (error) {
      console.warn("binancews: could not refetch the newest klines", error);
    }
  }

  // ---- live stream ---------------------------------------------------------

  let socket = null;
  let attempt = 0;
  let retryTimer = null;

  function setStatus(state, message) {
    statusElement.dataset.state = state;
    statusElement.querySelector(".status-text").textContent = message;
  }

  function streamUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${window.location.host}/market/ws/${SYMBOL.toLowerCase()}@kline_${INTERVAL}`;
  }

  function onMessage(message) {
    let data;
    try {
      data = JSON.parse(message.data);
    } catch {
      return;
    }
    const event = data && data.data && data.stream ? data.data : data; // raw or combined-stream form
    if (isKlineEvent(event)) applyLive(fromEvent(event.k));
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    setStatus("connecting", attempt === 0 ? "Connecting…" : `Reconnecting (attempt ${attempt + 1})…`);
    const current = new WebSocket(streamUrl());
    socket = current;
    current.addEventListener("open", () => {
      setStatus("live", "Live");
      syncNewest(); // closes while we were away (or since the history was read)
    });
    current.addEventListener("message", (message) => {
      attempt = 0;
      onMessage(message);
    });
    current.addEventListener("close", () => {
      if (socket === current) scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    socket = null;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt) * (0.8 + Math.random() * 0.4);
    attempt += 1;
    setStatus("offline", `Live updates offline · retrying in ${Math.max(1, Math.round(delay / 1000))} s`);
    retryTimer = setTimeout(connect, delay);
  }

  window.addEventListener("online", () => {
    if (retryTimer !== null) connect();
  });

  // ---- symbol search -------------------------------------------------------

  const known = new Set([...document.querySelectorAll("#symbol-list option")].map((o) => o.value));
  document.getElementById("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const wanted = document.getElementById("symbol-input").value.trim().toUpperCase();
    const error = document.getElementById("search-error");
    if (!known.has(wanted)) {
      error.textContent = wanted ? `${wanted} is not recorded.` : "";
      return;
    }
    window.location.assign(`/chart/${encodeURIComponent(wanted)}?interval=${encodeURIComponent(INTERVAL)}`);
  });

  // ---- start ---------------------------------------------------------------

  window.binancewsChart = {
    chart,
    candles,
    volumes,
    markers,
    klines,
    openTimeOf: (time) => timeToOpen.get(time),
    holes: () => holes.map(({ from, missing }) => ({ from, missing })),
    reachedStart: () => reachedStart,
  };
  loadInitial();
  connect();
})();
