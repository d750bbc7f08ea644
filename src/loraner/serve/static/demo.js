// loraner demo page: plain DOM, no build step. All user and model text goes in through textContent
// (never innerHTML), so a text containing markup is shown, not run.
"use strict";

const EXAMPLES = [
  "José Müller flew from Oslo to São Paulo on Monday to meet Angela Merkel at the Siemens office.",
  "Pasienten Kari Nordmann (45 år) ble innlagt ved Haukeland universitetssjukehus i Bergen 12.03.2024. " +
    "Fastlege: Per Johansen, Sandvika legesenter, tlf. 67 55 44 33.",
  "Zoë Ødegård 😀 visited 東京 (Tokyo) with François Lefèvre.",
];

// Modes of the page. Each names the server feature it needs (listed by GET / in "features"), the
// endpoint it posts {"text"} to, the output view it shows (the others are hidden) and how to render
// the answer. A mode's radio button is enabled only when the server lists its feature.
const MODES = {
  entities: {
    feature: "predict",
    endpoint: "/predict",
    button: "Analyze",
    title: "Entities",
    view: "highlighted",
    render: (text, data) => renderEntities(text, data.entities || []),
  },
  deidentify: {
    feature: "deidentify",
    endpoint: "/deidentify",
    button: "De-identify",
    title: "De-identified text",
    view: "deid-view",
    render: (text, data) => renderDeidentified(text, data),
  },
};
const VIEWS = ["highlighted", "deid-view", "deid-operators"];

const PALETTE = {
  PER: "#ffd6a5", PERSON: "#ffd6a5", PATIENT: "#ffd6a5",
  LOC: "#b9fbc0", LOCATION: "#b9fbc0", GPE: "#b9fbc0",
  ORG: "#a0c4ff", ORGANIZATION: "#a0c4ff",
  MISC: "#e4c1f9", DATE: "#fdffb6", TIME: "#fdffb6",
  ID: "#ffadad", PHONE: "#ffc6ff", AGE: "#caffbf",
};

const $ = (id) => document.getElementById(id);
let knownTypes = [];

// API keys: when the service has them, every call sends the key entered in the key form. It is kept
// for this tab only (sessionStorage: gone when the tab closes) and sent to this origin only.
const KEY_STORE = "loraner-api-key";

function storedKey() {
  try {
    return sessionStorage.getItem(KEY_STORE) || "";
  } catch {
    return ""; // storage disabled: the key lives in the form field only
  }
}

function api(path, options = {}) {
  const key = storedKey() || $("api-key").value.trim();
  const headers = { ...(options.headers || {}) };
  if (key) headers.Authorization = `Bearer ${key}`;
  return fetch(path, { ...options, headers });
}

// A 401: show the key form with the service's reason (no key, or a key it does not know).
function askForKey(detail) {
  $("key-form").hidden = false;
  $("key-status").textContent = detail || "This service needs an API key.";
  $("key-status").classList.add("status-error");
  $("api-key").focus();
}

function useKey(event) {
  event.preventDefault();
  const key = $("api-key").value.trim();
  try {
    if (key) sessionStorage.setItem(KEY_STORE, key);
    else sessionStorage.removeItem(KEY_STORE);
  } catch {
    // storage disabled: api() reads the field itself
  }
  $("key-status").textContent = "";
  $("key-status").classList.remove("status-error");
  loadInfo();
}

function colorFor(type) {
  if (PALETTE[type]) return PALETTE[type];
  let hash = 0;
  for (const ch of type) hash = (hash * 31 + ch.codePointAt(0)) % 360;
  return `hsl(${hash}, 75%, 82%)`;
}

function currentMode() {
  const checked = document.querySelector('input[name="mode"]:checked');
  return MODES[checked ? checked.value : "entities"] || MODES.entities;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function setStatus(message, isError) {
  const status = $("status");
  status.textContent = message;
  status.classList.toggle("status-error", Boolean(isError));
}

function renderLegend(types) {
  const legend = $("legend");
  legend.replaceChildren();
  for (const type of types) {
    const item = el("span", "legend-item", type);
    item.dataset.type = type;
    item.style.setProperty("--c", colorFor(type));
    legend.append(item);
  }
}

// Server offsets count Unicode code points (Python str); JS strings count UTF-16 units, so an emoji
// would shift every later span by one. Slice an array of code points instead.
// Fills `box` with `text`, each span made a <mark> by makeMark(span, itsText); range(span) gives
// [start, end) in `text` (entities: start/end; de-identified items: new_start/new_end).
function highlightInto(box, text, spans, makeMark, range = (s) => [s.start, s.end]) {
  const chars = Array.from(text);
  box.replaceChildren();
  const sorted = spans.map((span) => [span, ...range(span)]).sort((a, b) => a[1] - b[1]);
  let at = 0;
  for (const [span, start, end] of sorted) {
    if (start < at) continue; // overlapping spans cannot be nested inline; keep the first
    if (start > at) box.append(document.createTextNode(chars.slice(at, start).join("")));
    box.append(makeMark(span, chars.slice(start, end).join("")));
    at = end;
  }
  if (at < chars.length) box.append(document.createTextNode(chars.slice(at).join("")));
  if (!chars.length) box.append(el("span", "muted", "No text."));
}

function typedMark(className, type, text, label) {
  const mark = el("mark", className, text);
  mark.dataset.type = type;
  mark.style.setProperty("--c", colorFor(type));
  mark.append(el("span", "entity-label", label));
  return mark;
}

function entityMark(ent, text) {
  const score = Number(ent.score).toFixed(2);
  const mark = typedMark("entity", ent.type, text, `${ent.type} ${score}`);
  mark.dataset.score = score;
  mark.title = `${ent.type} · score ${score} · chars ${ent.start}–${ent.end}`;
  return mark;
}

function renderEntities(text, entities) {
  highlightInto($("highlighted"), text, entities, entityMark);
  $("count").textContent = `(${entities.length})`;
  renderLegend([...new Set([...knownTypes, ...entities.map((e) => e.type)])]);
}

// Items carry offsets into the answer's text (new_start/new_end) and into the original (start/end).
function replacementMark(item, text) {
  const mark = typedMark("replaced", item.type, text, `${item.type} · ${item.operator}`);
  mark.dataset.operator = item.operator;
  mark.title = `${item.type} replaced by ${item.operator} · original chars ${item.start}–${item.end}`;
  return mark;
}

function operatorSummary(items) {
  const byType = new Map();
  for (const item of items) {
    if (!byType.has(item.type)) byType.set(item.type, new Set());
    byType.get(item.type).add(item.operator);
  }
  return [...byType].map(([type, ops]) => `${type} → ${[...ops].join("/")}`).join(" · ");
}

function renderDeidentified(text, data) {
  const items = Array.isArray(data.items) ? data.items : [];
  const entities = Array.isArray(data.entities) ? data.entities : [];
  highlightInto($("deid-original"), text, entities, entityMark);
  const output = String(data.text ?? "");
  highlightInto($("deid-output"), output, items, replacementMark, (i) => [i.new_start, i.new_end]);
  $("count").textContent = `(${items.length} replaced)`;
  const summary = operatorSummary(items);
  const operators = $("deid-operators");
  operators.textContent = summary ? `Operators: ${summary}` : "Nothing to replace.";
  operators.hidden = false;
  renderLegend([...new Set([...knownTypes, ...items.map((i) => i.type)])]);
}

// Show the selected mode's output view, title and button. Earlier answers are cleared: they belong
// to the other mode (or an older text) and would be misread next to the new title.
function showMode(mode) {
  $("run").textContent = mode.button;
  $("output-title").textContent = mode.title;
  for (const id of VIEWS) $(id).hidden = id !== mode.view;
  for (const id of ["highlighted", "deid-original", "deid-output"]) {
    $(id).replaceChildren(el("span", "muted", "Results appear here."));
  }
  $("count").textContent = "";
}

async function analyze() {
  const text = $("text").value;
  const mode = currentMode();
  if (!text.trim()) {
    setStatus("Type some text first.", true);
    return;
  }
  const button = $("run");
  button.disabled = true;
  setStatus("Working…");
  const started = performance.now();
  try {
    const response = await api(mode.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(requestBody(text)),
    });
    const data = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    $("json").textContent = JSON.stringify(data, null, 2);
    if (response.status === 401) askForKey(data.detail);
    if (!response.ok) {
      const id = data.request_id ? ` (request ${data.request_id})` : "";
      setStatus(`Error ${response.status}: ${data.detail || "request failed"}${id}`, true);
      return;
    }
    mode.render(text, data);
    setStatus(`${Math.round(performance.now() - started)} ms`);
  } catch (err) {
    setStatus(`Network error: ${err.message}`, true);
  } finally {
    button.disabled = false;
  }
}

// The request body: the text, and the adapter chosen when the service has several.
function requestBody(text) {
  const adapter = $("adapter-choice").hidden ? "" : $("adapter").value;
  return adapter ? { text, adapter } : { text };
}

// GET /adapters: one option per adapter (its entity types in the label); hidden when there are none.
async function loadAdapters() {
  const response = await api("/adapters");
  if (!response.ok) return;
  const data = await response.json();
  const select = $("adapter");
  select.replaceChildren();
  for (const adapter of data.adapters) {
    const option = el("option", "", `${adapter.name} (${adapter.types.join(", ")})`);
    option.value = adapter.name;
    option.selected = adapter.name === data.default;
    select.append(option);
  }
  $("adapter-choice").hidden = data.adapters.length === 0;
}

async function loadInfo() {
  try {
    const response = await api("/");
    if (response.status === 401) {
      const answer = await response.json().catch(() => ({}));
      $("model-info").textContent = "This service needs an API key.";
      askForKey(answer.detail);
      return;
    }
    const info = await response.json();
    $("key-status").textContent = storedKey() ? "Key accepted." : "";
    const model = info.model;
    $("model-info").textContent = model
      ? `Model ${model.name} · ${model.backend} · types: ${model.types.join(", ")}`
      : "Model is still loading — results will come once it is ready.";
    knownTypes = model ? model.types : [];
    renderLegend(knownTypes);
    const features = new Set(info.features || []);
    for (const input of document.querySelectorAll('input[name="mode"]')) {
      const mode = MODES[input.value];
      const available = Boolean(mode) && features.has(mode.feature);
      input.disabled = !available;
      input.parentElement.title = available ? "" : "Not available on this server";
    }
    if (info.ready) await loadAdapters();
  } catch (err) {
    $("model-info").textContent = `Cannot reach the service: ${err.message}`;
  }
}

function init() {
  for (const button of document.querySelectorAll("button.example")) {
    button.addEventListener("click", () => {
      $("text").value = EXAMPLES[Number(button.dataset.example)];
      analyze();
    });
  }
  for (const input of document.querySelectorAll('input[name="mode"]')) {
    input.addEventListener("change", () => showMode(currentMode()));
  }
  showMode(currentMode());
  $("run").addEventListener("click", analyze);
  $("key-form").addEventListener("submit", useKey);
  if (storedKey()) $("key-form").hidden = false;
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) analyze();
  });
  loadInfo();
}

document.addEventListener("DOMContentLoaded", init);
