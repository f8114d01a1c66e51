// llmgine EventStream: the front end of llmgine.notebook.EventStream (an anywidget).
//
// Shipped byte for byte as llmgine/notebook/static/event_stream.js (see ../README.md).
// No imports and no CDN: it works offline, on Binder, in JupyterLab, Notebook 7 and VS Code.
//
// The kernel sends at most ~10 updates a second (`rows_json`: the rows as one JSON string,
// oldest first; and the counts); this file only draws them. Rows are keyed by their sequence number, so a row
// already on screen is reused, not rebuilt. Stable class names, for styling and for
// browser tests:
//   .llmgine-events           the widget's root
//   .llmgine-events-toolbar   pause button, filters, counts
//   .llmgine-events-pause     the pause / resume button (data-paused="true|false")
//   .llmgine-events-type      the event type filter (a <select>)
//   .llmgine-events-session   the session filter (a <select>)
//   .llmgine-events-counts    "seen 1,234 · kept … · shown … · dropped …"
//   .llmgine-events-table     the table; rows newest first
//   .llmgine-event-row        one event (data-seq, data-event-id, data-type)
//   .llmgine-event-payload    the expanded payload JSON (a <pre>, in the row after)

const ALL = "";

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function option(value, label, selected) {
  const node = element("option", "", label);
  node.value = value;
  node.selected = selected;
  return node;
}

function shortId(id) {
  return id.length > 12 ? id.slice(0, 6) + "…" + id.slice(-4) : id;
}

function formatCounts(counts, paused) {
  const n = (key) => (counts[key] || 0).toLocaleString("en-US");
  const text = `seen ${n("seen")} · kept ${n("kept")} · shown ${n("shown")} · dropped ${n("dropped")}`;
  return paused ? text + " · paused" : text;
}

function render({ model, el }) {
  el.classList.add("llmgine-events");

  const toolbar = element("div", "llmgine-events-toolbar");
  const pause = element("button", "llmgine-events-pause");
  pause.type = "button";
  const typeSelect = element("select", "llmgine-events-type");
  typeSelect.title = "Show one event type";
  const sessionSelect = element("select", "llmgine-events-session");
  sessionSelect.title = "Show one session";
  const counts = element("span", "llmgine-events-counts");
  toolbar.append(pause, typeSelect, sessionSelect, counts);

  const scroller = element("div", "llmgine-events-scroll");
  const table = element("table", "llmgine-events-table");
  const head = element("thead");
  const headRow = element("tr");
  for (const name of ["time", "type", "session", "summary"]) {
    headRow.append(element("th", `llmgine-events-col-${name}`, name));
  }
  head.append(headRow);
  const body = element("tbody");
  table.append(head, body);
  scroller.append(table);
  el.append(toolbar, scroller);

  // seq -> <tr>, reused across updates; payload rows are rebuilt (only expanded ones).
  const rowNodes = new Map();

  function expandedIds() {
    return new Set(model.get("expanded") || []);
  }

  function toggle(eventId) {
    const ids = model.get("expanded") || [];
    const next = ids.includes(eventId) ? ids.filter((x) => x !== eventId) : [...ids, eventId];
    model.set("expanded", next);
    model.save_changes();
  }

  function rowNode(row) {
    let tr = rowNodes.get(row.seq);
    if (tr) return tr;
    tr = element("tr", "llmgine-event-row");
    tr.dataset.seq = String(row.seq);
    tr.dataset.eventId = row.id;
    tr.dataset.type = row.type;
    tr.title = "Click to show the payload";
    const session = element("td", "llmgine-events-col-session", row.session ? shortId(row.session) : "");
    session.title = row.session;
    const type = element("td", "llmgine-events-col-type", row.type);
    type.title = (model.get("type_names") || {})[row.type] || row.type;
    tr.append(
      element("td", "llmgine-events-col-time", row.time),
      type,
      session,
      element("td", "llmgine-events-col-summary", row.summary),
    );
    tr.addEventListener("click", () => toggle(row.id));
    rowNodes.set(row.seq, tr);
    return tr;
  }

  function payloadNode(eventId) {
    const tr = element("tr", "llmgine-event-payload-row");
    const td = element("td");
    td.colSpan = 4;
    const payloads = model.get("payloads") || {};
    td.append(element("pre", "llmgine-event-payload", payloads[eventId] ?? "loading…"));
    tr.append(td);
    return tr;
  }

  function drawRows() {
    const rows = JSON.parse(model.get("rows_json") || "[]");
    const expanded = expandedIds();
    const keep = new Set();
    const nodes = [];
    for (let i = rows.length - 1; i >= 0; i--) {
      const row = rows[i];
      keep.add(row.seq);
      const tr = rowNode(row);
      tr.classList.toggle("llmgine-event-row-expanded", expanded.has(row.id));
      nodes.push(tr);
      if (expanded.has(row.id)) nodes.push(payloadNode(row.id));
    }
    for (const seq of rowNodes.keys()) {
      if (!keep.has(seq)) rowNodes.delete(seq);
    }
    body.replaceChildren(...nodes);
  }

  function drawSelect(select, values, chosen, allLabel, label) {
    const nodes = [option(ALL, allLabel, chosen === ALL)];
    const listed = new Set(values);
    for (const value of values) nodes.push(option(value, label(value), value === chosen));
    if (chosen !== ALL && !listed.has(chosen)) nodes.push(option(chosen, label(chosen), true));
    select.replaceChildren(...nodes);
  }

  function drawFilters() {
    const filter = model.get("type_filter") || [];
    const types = model.get("types") || [];
    if (filter.length > 1) {
      // Set from Python to several types: show that, and offer "all" or one of them.
      const several = option("__several__", `${filter.length} types`, true);
      several.disabled = true;
      drawSelect(typeSelect, types, ALL, "all types", (t) => t);
      typeSelect.prepend(several);
      several.selected = true;
    } else {
      drawSelect(typeSelect, types, filter[0] || ALL, "all types", (t) => t);
    }
    drawSelect(sessionSelect, model.get("sessions") || [], model.get("session_filter") || ALL,
      "all sessions", shortId);
  }

  function drawToolbar() {
    const paused = Boolean(model.get("paused"));
    pause.textContent = paused ? "resume" : "pause";
    pause.dataset.paused = String(paused);
    counts.textContent = formatCounts(model.get("counts") || {}, paused);
  }

  pause.addEventListener("click", () => {
    model.set("paused", !model.get("paused"));
    model.save_changes();
  });
  typeSelect.addEventListener("change", () => {
    model.set("type_filter", typeSelect.value === ALL ? [] : [typeSelect.value]);
    model.save_changes();
  });
  sessionSelect.addEventListener("change", () => {
    model.set("session_filter", sessionSelect.value);
    model.save_changes();
  });

  const handlers = [
    ["change:rows_json", drawRows],
    ["change:expanded", drawRows],
    ["change:payloads", drawRows],
    ["change:types", drawFilters],
    ["change:sessions", drawFilters],
    ["change:type_filter", drawFilters],
    ["change:session_filter", drawFilters],
    ["change:counts", drawToolbar],
    ["change:paused", drawToolbar],
  ];
  for (const [name, handler] of handlers) model.on(name, handler);
  drawToolbar();
  drawFilters();
  drawRows();

  return () => {
    for (const [name, handler] of handlers) model.off(name, handler);
    rowNodes.clear();
  };
}

export default { render };
