// The web page of `nmt serve`: plain JavaScript, no build step. It asks /languages for the
// language pairs, sends the text's lines to /v1/translate with attention, and draws each
// sentence's attention as a table (the browser's own fonts show the Chinese subwords).
"use strict";

const $ = (id) => document.getElementById(id);
let pairs = []; // [source, target] codes
let names = {}; // code -> language name

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try {
    body = await response.json();
  } catch (_) {
    // not JSON: reported below with the status text
  }
  if (!response.ok) {
    throw new Error((body && body.error) || `${response.status} ${response.statusText}`);
  }
  return body;
}

async function loadLanguages() {
  const languages = await getJSON("/languages");
  names = Object.fromEntries(languages.map((l) => [l.code, l.name]));
  pairs = languages.flatMap((l) => l.targets.map((target) => [l.code, target]));
  const select = $("pair");
  select.replaceChildren(
    ...pairs.map(([source, target], index) => {
      const option = document.createElement("option");
      option.value = String(index);
      option.textContent = `${names[source] || source} → ${names[target] || target}`;
      return option;
    }),
  );
  $("swap").disabled = !pairs.some(([s, t]) => pairs.some(([s2, t2]) => s2 === t && t2 === s));
}

async function loadSettings() {
  const settings = await getJSON("/frontend/settings");
  $("key-field").hidden = !settings.keyRequired;
}

function swap() {
  const [source, target] = pairs[Number($("pair").value)];
  const reverse = pairs.findIndex(([s, t]) => s === target && t === source);
  if (reverse < 0) return;
  $("pair").value = String(reverse);
  const translated = [...document.querySelectorAll(".translation .text")].map((e) => e.textContent);
  if (translated.length) $("source").value = translated.join("\n");
}

async function translate(event) {
  if (event) event.preventDefault();
  const lines = $("source").value.split("\n").map((line) => line.trim()).filter(Boolean);
  if (!lines.length) {
    setStatus("Type a sentence first.", true);
    return;
  }
  const [source, target] = pairs[Number($("pair").value)];
  const body = { q: lines, source, target, attention: true };
  const key = $("api-key").value.trim();
  if (key) body.api_key = key;
  $("translate").disabled = true;
  setStatus("Translating…");
  const started = performance.now();
  try {
    const data = await getJSON("/v1/translate", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    render(data);
    setStatus(`${data.engine} engine, ${Math.round(performance.now() - started)} ms`);
  } catch (error) {
    setStatus(error.message, true);
  } finally {
    $("translate").disabled = false;
  }
}

function render(data) {
  const result = $("result");
  const attention = $("attention");
  result.replaceChildren();
  attention.replaceChildren();
  for (const sentence of data.results) {
    const best = sentence.translations[0];
    const line = document.createElement("p");
    line.className = "translation";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = best ? best.text : "";
    line.append(text);
    if (best) {
      const score = document.createElement("small");
      score.textContent = `score ${best.score.toFixed(3)}`;
      line.append(score);
    }
    result.append(line);
    if (best && best.attention) {
      attention.append(heatMap(sentence.source, sentence.source_tokens, best));
    }
  }
  if (data.note) {
    const note = document.createElement("p");
    note.className = "note";
    note.textContent = data.note;
    attention.append(note);
  }
}

// One table: source subwords across, output subwords (and EOS) down, weight as colour.
function heatMap(source, sourceTokens, candidate) {
  const figure = document.createElement("figure");
  const caption = document.createElement("figcaption");
  caption.textContent = `${source} → ${candidate.text}`;
  const table = document.createElement("table");
  table.className = "heatmap";
  const head = table.createTHead().insertRow();
  head.append(document.createElement("th"));
  for (const token of sourceTokens) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = token;
    head.append(th);
  }
  const body = table.createTBody();
  const outputTokens = [...candidate.tokens, "</s>"];
  candidate.attention.forEach((weights, row) => {
    const tr = body.insertRow();
    const th = document.createElement("th");
    th.scope = "row";
    th.textContent = outputTokens[row];
    tr.append(th);
    for (const weight of weights) {
      const td = tr.insertCell();
      const w = Math.max(0, Math.min(1, weight));
      td.style.background = `rgba(37, 99, 235, ${w.toFixed(3)})`;
      td.style.color = w > 0.5 ? "white" : "transparent";
      td.title = weight.toFixed(3);
      td.textContent = w >= 0.05 ? w.toFixed(1).replace(/^0/, "") : "";
    }
  });
  figure.append(caption, table);
  return figure;
}

$("form").addEventListener("submit", translate);
$("swap").addEventListener("click", swap);
$("source").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) translate(event);
});
Promise.all([loadLanguages(), loadSettings()]).catch((error) => setStatus(error.message, true));
