// The export page's charts: the series come from the JSON API, drawn by plotly.js (served from
// this service, no CDN). Loaded as a file: the page has no inline script (strict CSP).
"use strict";
(function () {
  const holder = document.getElementById("charts");
  if (!holder || typeof Plotly === "undefined") {
    return;
  }
  const started = performance.now();
  let drawStarted = started;
  const num = (text) => (text === null || text === undefined ? null : Number(text));
  const hours = (slots) => slots.map((minute) => minute / 60);
  const config = { responsive: true, displaylogo: false };
  const margin = { l: 60, r: 60, t: 40, b: 50 };

  function daily(series) {
    const days = series.daily.map((d) => d.date);
    const traces = [];
    if (series.daily.some((d) => d.delivered_kwh !== null)) {
      traces.push({ x: days, y: series.daily.map((d) => num(d.delivered_kwh)), name: "delivered (kWh)", type: "scatter", mode: "lines", line: { color: "#1f5fa8", shape: "hv" }, fill: "tozeroy" });
    }
    if (series.daily.some((d) => d.received_kwh !== null)) {
      traces.push({ x: days, y: series.daily.map((d) => num(d.received_kwh)), name: "received (kWh)", type: "scatter", mode: "lines", line: { color: "#b07a00", shape: "hv" } });
    }
    if (series.daily.some((d) => d.therms !== null)) {
      traces.push({ x: days, y: series.daily.map((d) => num(d.therms)), name: "gas (therms)", type: "scatter", mode: "lines", yaxis: "y2", line: { color: "#b3261e" } });
    }
    return Plotly.newPlot("chart-daily", traces, {
      // Lines, not 730 bars: one SVG path per series keeps a year cheap to draw.
      title: { text: "Daily energy" }, margin: margin, hovermode: "x unified",
      yaxis: { title: { text: "kWh per day" } },
      yaxis2: { title: { text: "therms per day" }, overlaying: "y", side: "right", showgrid: false },
      legend: { orientation: "h", y: -0.2 },
    }, config);
  }

  function heatmap(series) {
    const h = series.heatmap;
    return Plotly.newPlot("chart-heatmap", [{
      type: "heatmap", x: h.days, y: hours(h.slots), z: h.slots.map((_, i) => h.values.map((line) => line[i])),
      colorscale: "YlOrRd", reversescale: true, colorbar: { title: { text: "kWh" } }, hoverongaps: false,
    }], {
      title: { text: "Electricity delivered, hour of day by day (kWh per " + h.slot_minutes + " min)" },
      margin: margin, yaxis: { title: { text: "hour of day" }, range: [0, 24], dtick: 3 },
    }, config);
  }

  function profile(series) {
    const p = series.profile;
    const traces = p.months.map((month, i) => ({ x: hours(p.slots), y: p.values[i], name: month, type: "scatter", mode: "lines" }));
    return Plotly.newPlot("chart-profile", traces, {
      title: { text: "Average day by month (kWh per " + p.slot_minutes + " min)" }, margin: margin,
      xaxis: { title: { text: "hour of day" }, range: [0, 24], dtick: 3 },
      yaxis: { title: { text: "kWh" } },
    }, config);
  }

  fetch(holder.dataset.series, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((response) => {
      if (!response.ok) {
        throw new Error("the series answered " + response.status);
      }
      return response.json();
    })
    .then(async (series) => {
      drawStarted = performance.now();
      const times = [];
      for (const draw of [daily, heatmap, profile]) {
        const before = performance.now();
        await draw(series);
        times.push(Math.round(performance.now() - before));
      }
      holder.dataset.chartMs = times.join(",");
    })
    .then(() => {
      holder.dataset.drawMs = String(Math.round(performance.now() - drawStarted));
      // Read by the page tests: from this script's start (series fetch included) and from the
      // navigation's start (plotly.js parsed included).
      holder.dataset.renderMs = String(Math.round(performance.now() - started));
      holder.dataset.sinceNavigationMs = String(Math.round(performance.now()));
      holder.dataset.state = "rendered";
    })
    .catch((error) => {
      holder.dataset.state = "failed";
      const note = document.getElementById("charts-error");
      if (note) {
        note.textContent = "The charts could not be drawn: " + error.message;
        note.hidden = false;
      }
    });
})();
