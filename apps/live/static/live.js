// Polls the live API and redraws the page in place. Every URL is relative, so
// the page works wherever the service is mounted.
"use strict";

(function () {
  const POLL_INTERVAL_MS = 2000;
  const pageSize = Number(document.body.dataset.pageSize) || 20;
  const CASE_COLUMNS = ["stored_at", "name", "location", "age", "state", "infected_type", "path"];

  // Table paging by keyset: `pageCursors` contains the `before` cursor of every page
  // newer than the shown one, so "Newer" can go back. Page 1 has no cursor.
  const pageCursors = [];
  let shownCursor = null;
  let nextCursor = null;
  let totalCases = 0;

  // Key of the data each chart was last drawn from, so an unchanged chart is not fetched.
  const chartKeys = {};
  let updates = 0;
  let timer = null;

  function byId(id) {
    return document.getElementById(id);
  }

  function formatNumber(value) {
    return Number(value || 0).toLocaleString("en-US");
  }

  function formatTime(iso) {
    if (!iso) return "";
    const moment = new Date(iso);
    return Number.isNaN(moment.getTime()) ? String(iso) : moment.toLocaleString();
  }

  async function fetchJson(url) {
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) {
      throw new Error(`${url} returned HTTP ${response.status}`);
    }
    return response.json();
  }

  async function drawChart(elementId, url, dataKey) {
    if (chartKeys[elementId] === dataKey) return;
    const response = await fetch(url, { cache: "no-store" });
    if (!response.ok) {
      throw new Error(`${url} returned HTTP ${response.status}`);
    }
    // The SVG is made by this service, with every label escaped.
    byId(elementId).innerHTML = await response.text();
    chartKeys[elementId] = dataKey;
  }

  function fillCases(tbody, cases) {
    const rows = cases.map((record) => {
      const row = document.createElement("tr");
      row.dataset.recordId = record.record_id;
      for (const column of CASE_COLUMNS) {
        const cell = document.createElement("td");
        const value = record[column];
        // textContent, never innerHTML: names and locations are user input.
        cell.textContent = column === "stored_at" ? formatTime(value) : value ?? "";
        if (column === "age") cell.className = "number";
        row.appendChild(cell);
      }
      return row;
    });
    tbody.replaceChildren(...rows);
  }

  function drawSummary(summary) {
    totalCases = summary.total;
    byId("total").textContent = formatNumber(summary.total);
    byId("path-grpc").textContent = formatNumber(summary.by_path.grpc);
    byId("path-redis").textContent = formatNumber(summary.by_path.redis);

    const items = summary.top_locations.map((entry) => {
      const item = document.createElement("li");
      const count = document.createElement("span");
      count.className = "count";
      count.textContent = formatNumber(entry.count);
      item.append(entry.location, count);
      return item;
    });
    byId("top-locations").replaceChildren(...items);
  }

  function drawPager() {
    const page = pageCursors.length + 1;
    const pages = Math.max(1, Math.ceil(totalCases / pageSize));
    byId("page-label").textContent = `Page ${page} of ${formatNumber(Math.max(page, pages))}`;
    byId("newer").disabled = pageCursors.length === 0;
    byId("older").disabled = !nextCursor;
  }

  async function loadPage() {
    let url = `api/cases?limit=${pageSize}`;
    if (shownCursor) url += `&before=${encodeURIComponent(shownCursor)}`;
    const page = await fetchJson(url);
    fillCases(byId("cases"), page.cases);
    nextCursor = page.next_before;
    drawPager();
  }

  function setStatus(text, isError) {
    const status = byId("status");
    status.textContent = text;
    status.classList.toggle("error", isError);
  }

  async function refresh() {
    try {
      const [summary, latest, ages] = await Promise.all([
        fetchJson("api/summary"),
        fetchJson("api/latest?count=5"),
        fetchJson("api/age-ranges"),
      ]);
      drawSummary(summary);
      fillCases(byId("latest"), latest.cases);
      await Promise.all([
        drawChart("chart-state", "charts/state.svg", JSON.stringify(summary.by_state)),
        drawChart(
          "chart-infected-type",
          "charts/infected-type.svg",
          JSON.stringify(summary.by_infected_type),
        ),
        drawChart("chart-age-range", "charts/age-range.svg", JSON.stringify(ages.age_ranges)),
      ]);
      // Page 1 follows new cases; an older page stays where the reader put it.
      if (pageCursors.length === 0) {
        await loadPage();
      } else {
        drawPager();
      }
      updates += 1;
      document.body.dataset.updates = String(updates);
      setStatus(
        `Updated ${new Date().toLocaleTimeString()}; MongoDB counts as of ` +
          `${new Date(summary.as_of).toLocaleTimeString()}`,
        false,
      );
    } catch (error) {
      setStatus(`Update failed: ${error.message}. Retrying…`, true);
    }
  }

  function schedule() {
    clearTimeout(timer);
    // A hidden tab stops polling and catches up when it is shown again.
    if (!document.hidden) {
      timer = setTimeout(async () => {
        await refresh();
        schedule();
      }, POLL_INTERVAL_MS);
    }
  }

  async function showPage(change) {
    change();
    try {
      await loadPage();
    } catch (error) {
      setStatus(`Loading the page failed: ${error.message}`, true);
    }
  }

  byId("older").addEventListener("click", () =>
    showPage(() => {
      if (!nextCursor) return;
      pageCursors.push(shownCursor);
      shownCursor = nextCursor;
    }),
  );
  byId("newer").addEventListener("click", () =>
    showPage(() => {
      if (pageCursors.length === 0) return;
      shownCursor = pageCursors.pop();
    }),
  );
  document.addEventListener("visibilitychange", async () => {
    if (!document.hidden) {
      await refresh();
    }
    schedule();
  });

  refresh().then(schedule);
})();
