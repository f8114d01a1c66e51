// llmgine SweepView grid: the front end of llmgine.notebook.SweepView's grid (an anywidget).
//
// Shipped byte for byte as llmgine/notebook/static/sweep_grid.js (see ../README.md).
// No imports and no CDN: it works offline, on Binder, in JupyterLab, Notebook 7 and VS Code.
//
// The kernel sends one *page* of prompts at a time (`page_json`: [{id, prompt, cells:
// [[text, background, kind, title], ...]}], already coloured), at most ~10 times a second;
// this file only draws it and sends back what the user does: a page (`offset`), the score
// that colours the grid (`score`), and a clicked cell (`selected`: [prompt_id, column]).
// Stable class names, for styling and for browser tests:
//   .llmgine-sweep-grid        the widget's root
//   .llmgine-sweep-toolbar     status, score select, paging
//   .llmgine-sweep-status      "120 of 400 rows · 3 errors · ..."
//   .llmgine-sweep-legend      the colour scale (low .. high) and the failed-call swatch
//   .llmgine-sweep-score       the score select
//   .llmgine-sweep-prev / -next   paging buttons; .llmgine-sweep-range "prompts 1–50 of 200"
//   .llmgine-sweep-table       the table: a row per prompt, a column per model x params
//   .llmgine-sweep-cell        one cell (data-kind="pending|done|partial|error|unscored",
//                              data-prompt, data-column; .llmgine-sweep-selected when chosen)

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function render({ model, el }) {
  el.classList.add("llmgine-sweep-grid");

  const toolbar = element("div", "llmgine-sweep-toolbar");
  const status = element("span", "llmgine-sweep-status");
  const scoreSelect = element("select", "llmgine-sweep-score");
  scoreSelect.title = "The score that colours the grid";
  const prev = element("button", "llmgine-sweep-prev", "‹ prev");
  const next = element("button", "llmgine-sweep-next", "next ›");
  prev.type = next.type = "button";
  const range = element("span", "llmgine-sweep-range");
  // The colour scale: the score's range from red to green, and how a failed call looks.
  const legend = element("span", "llmgine-sweep-legend");
  const low = element("span", "llmgine-sweep-legend-low");
  const bar = element("span", "llmgine-sweep-legend-bar");
  const high = element("span", "llmgine-sweep-legend-high");
  const failed = element("span", "llmgine-sweep-legend-error", "✕ failed");
  legend.append(low, bar, high, failed);
  toolbar.append(status, legend, scoreSelect, prev, range, next);

  const scroller = element("div", "llmgine-sweep-scroll");
  const table = element("table", "llmgine-sweep-table");
  const head = element("thead");
  const body = element("tbody");
  table.append(head, body);
  scroller.append(table);
  el.append(toolbar, scroller);

  function drawHead() {
    const row = element("tr");
    row.append(element("th", "llmgine-sweep-prompt-head", "prompt"));
    for (const label of model.get("columns") || []) {
      const th = element("th", "llmgine-sweep-column", label);
      th.title = label;
      row.append(th);
    }
    head.replaceChildren(row);
  }

  function drawScores() {
    const names = model.get("score_names") || [];
    const chosen = model.get("score") || "";
    const nodes = names.map((name) => {
      const node = element("option", "", `score: ${name}`);
      node.value = name;
      node.selected = name === chosen;
      return node;
    });
    scoreSelect.replaceChildren(...nodes);
    scoreSelect.hidden = names.length < 2;
  }

  function drawToolbar() {
    status.textContent = model.get("status") || "";
    const [from, to] = model.get("scale") || [0, 1];
    low.textContent = String(from);
    high.textContent = String(to);
    const offset = model.get("offset") || 0;
    const size = model.get("page_size") || 50;
    const total = model.get("total") || 0;
    const last = Math.min(total, offset + size);
    range.textContent = total ? `prompts ${offset + 1}–${last} of ${total}` : "no prompts";
    prev.disabled = offset <= 0;
    next.disabled = last >= total;
  }

  function drawRows() {
    // Only the page is ever in the DOM: a sweep of 10,000 prompts draws page_size rows.
    const rows = JSON.parse(model.get("page_json") || "[]");
    const selected = model.get("selected") || [];
    const nodes = rows.map((row) => {
      const tr = element("tr", "llmgine-sweep-row");
      tr.dataset.prompt = String(row.id);
      const prompt = element("td", "llmgine-sweep-prompt", row.prompt);
      prompt.title = row.prompt;
      tr.append(prompt);
      row.cells.forEach(([text, background, kind, title], column) => {
        const td = element("td", "llmgine-sweep-cell", text);
        td.dataset.kind = kind;
        td.dataset.prompt = String(row.id);
        td.dataset.column = String(column);
        td.title = title;
        td.style.background = background;
        if (selected[0] === row.id && selected[1] === column) {
          td.classList.add("llmgine-sweep-selected");
        }
        tr.append(td);
      });
      return tr;
    });
    body.replaceChildren(...nodes);
  }

  function page(delta) {
    const size = model.get("page_size") || 50;
    const total = model.get("total") || 0;
    const offset = Math.max(0, Math.min((model.get("offset") || 0) + delta * size, total - 1));
    model.set("offset", offset - (offset % size));
    model.save_changes();
  }

  prev.addEventListener("click", () => page(-1));
  next.addEventListener("click", () => page(1));
  scoreSelect.addEventListener("change", () => {
    model.set("score", scoreSelect.value);
    model.save_changes();
  });
  body.addEventListener("click", (event) => {
    const td = event.target.closest(".llmgine-sweep-cell");
    if (!td || td.dataset.kind === "pending") return;
    model.set("selected", [Number(td.dataset.prompt), Number(td.dataset.column)]);
    model.save_changes();
  });

  const handlers = [
    ["change:columns", drawHead],
    ["change:page_json", drawRows],
    ["change:selected", drawRows],
    ["change:score_names", drawScores],
    ["change:score", drawScores],
    ["change:status", drawToolbar],
    ["change:offset", drawToolbar],
    ["change:total", drawToolbar],
    ["change:scale", drawToolbar],
  ];
  for (const [name, handler] of handlers) model.on(name, handler);
  drawHead();
  drawScores();
  drawToolbar();
  drawRows();

  return () => {
    for (const [name, handler] of handlers) model.off(name, handler);
  };
}

export default { render };
