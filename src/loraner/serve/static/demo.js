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
// endpoint it posts {"text"} to, and how to render the answer.
// Extension point for de-identification: when the server adds POST /deidentify and lists
// "deidentify" in its features, the radio button is enabled; adjust render() to the response shape.
const MODES = {
  entities: {
    feature: "predict",
    endpoint: "/predict",
    button: "Analyze",
    render: (text, data) => renderEntities(text, data.entities || []),
  },
  deidentify: {
    feature: "deidentify",
    endpoint: "/deidentify",
    button: "De-identify",
    render: (text, data) => renderDeidentified(text, data),
  },
};

const PALETTE = {
  PER: "#ffd6a5", PERSON: "#ffd6a5", PATIENT: "#ffd6a5",
  LOC: "#b9fbc0", LOCATION: "#b9fbc0", GPE: "#b9fbc0",
  ORG: "#a0c4ff", ORGANIZATION: "#a0c4ff",
  MISC: "#e4c1f9", DATE: "#fdffb6", TIME: "#fdffb6",
  ID: "#ffadad", PHONE: "#ffc6ff", AGE: "#caffbf",
};

const $ = (id) => document.getElementById(id);
let knownTypes = [];

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
// would shift every later entity by one. Slice an array of code points instead.
function renderEntities(text, entities) {
  const chars = Array.from(text);
  const box = $("highlighted");
  box.replaceChildren();
  const sorted = [...entities].sort((a, b) => a.start - b.start);
  let at = 0;
  for (const ent of sorted) {
    if (ent.start < at) continue; // overlapping spans cannot be nested inline; keep the first
    if (ent.start > at) box.append(document.createTextNode(chars.slice(at, ent.start).join("")));
    const mark = el("mark", "entity", chars.slice(ent.start, ent.end).join(""));
    const score = Number(ent.score).toFixed(2);
    mark.dataset.type = ent.type;
    mark.dataset.score = score;
    mark.title = `${ent.type} · score ${score} · chars ${ent.start}–${ent.end}`;
    mark.style.setProperty("--c", colorFor(ent.type));
    mark.append(el("span", "entity-label", `${ent.type} ${score}`));
    box.append(mark);
    at = ent.end;
  }
  if (at < chars.length) box.append(document.createTextNode(chars.slice(at).join("")));
  if (!chars.length) box.append(el("span", "muted", "No text."));
  $("count").textContent = `(${entities.length})`;
  const types = [...new Set([...knownTypes, ...entities.map((e) => e.type)])];
  renderLegend(types);
}

function renderDeidentified(text, data) {
  // Placeholder until POST /deidentify exists: show the rewritten text if the answer carries one.
  const box = $("highlighted");
  box.replaceChildren(document.createTextNode(data.text !== undefined ? String(data.text) : text));
  if (Array.isArray(data.entities)) $("count").textContent = `(${data.entities.length})`;
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
    const response = await fetch(mode.endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ text }),
    });
    const data = await response.json().catch(() => ({ detail: `HTTP ${response.status}` }));
    $("json").textContent = JSON.stringify(data, null, 2);
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

async function loadInfo() {
  try {
    const info = await (await fetch("/")).json();
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
    input.addEventListener("change", () => {
      $("run").textContent = currentMode().button;
    });
  }
  $("run").addEventListener("click", analyze);
  $("text").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) analyze();
  });
  loadInfo();
}

document.addEventListener("DOMContentLoaded", init);
