// tunesmith's web page: one small script, no framework, no build step, nothing from elsewhere.
//
// Every call goes to this server's public /v1 API with the signed-in key (kept in
// sessionStorage, so it lives as long as the tab), so the page sees exactly what an API client
// with that key sees. Server strings reach the DOM only as text nodes or attribute values,
// never as markup: a job error or a file name cannot inject HTML.
"use strict";

const KEY = "tunesmith-key";
const ACTIVE = new Set(["validating_files", "queued", "running", "paused"]);
const SVG_NS = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
let timer = null; // the current view's refresh timer
let viewId = 0; // bumped on every navigation: a late answer for an old view is dropped

// ---- DOM ------------------------------------------------------------------------------------

/** An element with attributes (`onclick` etc. become listeners) and children; a string child
 * becomes a text node. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  for (const c of children.flat()) {
    if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

function svg(tag, attrs, text) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  if (text !== undefined) el.textContent = text;
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "");
const num = (x) => typeof x === "number" && Number.isFinite(x);
const fmt = (x) => (num(x) ? x.toPrecision(4) : "");
const badge = (status) => h("span", { class: `badge ${status}` }, status);

function flash(message) {
  $("flash").textContent = message || "";
  $("flash").hidden = !message;
}

// ---- API ------------------------------------------------------------------------------------

/** Calls /v1`path` with the key; returns the parsed JSON (or, with `raw`, the Response), or
 * throws an Error carrying the API's own message. */
async function api(path, { method = "GET", body, form, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` };
  let payload = form;
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(`/v1${path}`, { method, headers, body: payload });
  if (response.ok && raw) return response;
  const data = await response.json().catch(() => null);
  const message = (data && data.error && data.error.message) ||
    `${response.status} ${response.statusText}`;
  if (response.status === 401) {
    signOut(message);
    throw new Error(message);
  }
  if (!response.ok) throw new Error(message);
  return data;
}

async function download(fileId, filename) {
  const response = await api(`/files/${enc(fileId)}/content`, { raw: true });
  const url = URL.createObjectURL(await response.blob());
  const a = h("a", { href: url, download: filename || fileId });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30000);
}

/** A file's name and a button that downloads it (its metadata is fetched once). */
function fileLink(fileId, cache) {
  const name = h("span", {}, fileId);
  const button = h("button", { type: "button", class: "small", "data-file-id": fileId,
    onclick: () => download(fileId, cache.get(fileId)).catch((e) => flash(e.message)),
  }, "Download");
  const meta = cache.has(fileId) ? Promise.resolve() : api(`/files/${enc(fileId)}`)
    .then((f) => cache.set(fileId, f.filename)).catch(() => {});
  meta.then(() => {
    if (cache.get(fileId)) name.textContent = `${cache.get(fileId)} (${fileId})`;
  });
  return h("span", {}, name, " ", button);
}

// ---- navigation -----------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY);
  route();
  $("signin-error").textContent = message || "";
}

/** Shows the view the URL's hash names: #/jobs, #/jobs/ID, #/new, #/models[/MODEL]. */
function route() {
  clearInterval(timer);
  timer = null;
  viewId += 1;
  flash("");
  const signedIn = Boolean(sessionStorage.getItem(KEY));
  $("signin-view").hidden = signedIn;
  $("nav").hidden = $("signout").hidden = !signedIn;
  $("who").textContent = signedIn ? "signed in" : "";
  const view = $("view");
  view.replaceChildren();
  if (!signedIn) {
    $("key").focus();
    return;
  }
  const [page, arg] = location.hash.replace(/^#\/?/, "").split("/");
  const id = arg ? decodeURIComponent(arg) : null;
  if (page === "jobs" && id) jobView(view, id);
  else if (page === "new") newJobView(view);
  else if (page === "models") modelsView(view, id);
  else jobsView(view);
}

/** Runs `fn` now and every `ms` while this view is shown; stops once `fn` returns true. */
function every(ms, fn) {
  clearInterval(timer);
  const mine = viewId;
  let busy = false;
  const tick = async () => {
    if (mine !== viewId || busy) return;
    busy = true;
    try {
      if ((await fn()) === true && mine === viewId) clearInterval(timer);
    } catch (e) {
      if (mine === viewId) flash(e.message);
    } finally {
      busy = false;
    }
  };
  timer = setInterval(tick, ms);
  tick();
  return tick;
}

// ---- jobs -----------------------------------------------------------------------------------

function jobsView(view) {
  const rows = h("tbody");
  const table = h("table", { id: "jobs" }, h("thead", {}, h("tr", {},
    ["Job", "Status", "Model", "Fine-tuned model", "Created"].map((t) => h("th", {}, t)))), rows);
  const note = h("p", { class: "muted" });
  view.append(h("h1", {}, "Fine-tuning jobs"), table, note);
  every(3000, async () => {
    const page = await api("/fine_tuning/jobs?limit=100");
    rows.replaceChildren(...page.data.map((j) => h("tr", { "data-job-id": j.id },
      h("td", {}, h("a", { href: `#/jobs/${enc(j.id)}` }, j.id)), h("td", {}, badge(j.status)),
      h("td", {}, j.model), h("td", {}, j.fine_tuned_model || ""),
      h("td", {}, when(j.created_at)))));
    note.textContent = !page.data.length ? "No jobs yet: start one under New job."
      : page.has_more ? "The newest 100 jobs." : "";
    table.dataset.loaded = "true";
  });
}

/** The job's events not yet in `state`, newest first (pages back until a known one). */
async function newEvents(jobId, state) {
  const fresh = [];
  let after = null;
  for (;;) {
    const page = await api(`/fine_tuning/jobs/${enc(jobId)}/events?limit=100` +
      (after ? `&after=${enc(after)}` : ""));
    const known = page.data.findIndex((e) => state.ids.has(e.id));
    fresh.push(...(known < 0 ? page.data : page.data.slice(0, known)));
    if (known >= 0 || !page.has_more || !page.data.length) break;
    after = page.data[page.data.length - 1].id;
  }
  fresh.forEach((e) => state.ids.add(e.id));
  state.events = fresh.concat(state.events);
  return fresh.length > 0;
}

function jobView(view, jobId) {
  const state = { events: [], ids: new Set(), files: new Map(), results: "" };
  const summary = h("dl", { class: "summary", id: "job-summary" });
  const action = (name) => async () => {
    try {
      await api(`/fine_tuning/jobs/${enc(jobId)}/${name}`, { method: "POST" });
      every(2000, refresh); // also restarts the refresh after a stop (resume)
    } catch (e) {
      flash(e.message);
    }
  };
  const buttons = Object.fromEntries(["pause", "resume", "cancel"].map((name) =>
    [name, h("button", { type: "button", id: `job-${name}`, onclick: action(name) },
      name[0].toUpperCase() + name.slice(1))]));
  const chart = svg("svg", { id: "loss-chart", viewBox: "0 0 640 260", role: "img",
    "aria-label": "loss curve", "data-train-points": 0, "data-valid-points": 0 });
  const legend = h("p", { class: "legend" }, h("span", { class: "key train" }, "training loss"),
    h("span", { class: "key valid" }, "validation loss"),
    h("span", { class: "key full" }, "full validation loss"));
  const events = h("ul", { id: "events" });
  const checkpoints = h("tbody");
  const results = h("ul", { id: "result-files" });
  view.append(h("h1", {}, "Job ", h("code", {}, jobId)), summary,
    h("p", { class: "actions" }, Object.values(buttons)),
    h("h2", {}, "Loss"), chart, legend,
    h("h2", {}, "Checkpoints"), h("table", { id: "checkpoints" }, h("thead", {}, h("tr", {},
      ["Step", "Model", "Training loss", "Validation loss", ""].map((t) => h("th", {}, t)))),
    checkpoints),
    h("h2", {}, "Result files"), results, h("h2", {}, "Events"), events);

  const refresh = async () => {
    const job = await api(`/fine_tuning/jobs/${enc(jobId)}`);
    const changed = await newEvents(jobId, state);
    const ckpts = await api(`/fine_tuning/jobs/${enc(jobId)}/checkpoints?limit=100`);
    renderSummary(summary, job, state.files);
    buttons.pause.disabled = !["validating_files", "queued", "running"].includes(job.status);
    buttons.resume.disabled = job.status !== "paused";
    buttons.cancel.disabled = !ACTIVE.has(job.status);
    if (changed) {
      const total = state.events.map((e) => e.data && e.data.total_steps).find(num);
      drawChart(chart, state.events, total);
      events.replaceChildren(...state.events.slice(0, 300).map((e) => h("li", { class: e.level },
        h("time", {}, when(e.created_at)), " ", e.message)));
    }
    checkpoints.replaceChildren(...ckpts.data.map((c) => h("tr", {},
      h("td", {}, c.step_number), h("td", {}, h("code", {}, c.fine_tuned_model_checkpoint)),
      h("td", {}, fmt(c.metrics.train_loss)), h("td", {}, fmt(c.metrics.valid_loss)),
      h("td", {}, h("a", { href: `#/models/${enc(c.fine_tuned_model_checkpoint)}` }, "Chat")))));
    if (state.results !== job.result_files.join()) {
      state.results = job.result_files.join();
      results.replaceChildren(...job.result_files.map((id) =>
        h("li", {}, fileLink(id, state.files))));
    }
    view.dataset.status = job.status;
    return !ACTIVE.has(job.status); // finished: nothing changes any more
  };
  every(2000, refresh);
}

function renderSummary(dl, job, files) {
  const hp = job.hyperparameters || {};
  // Rebuilt only when something shown changed (a rebuild also asks for the files' names).
  const signature = JSON.stringify([job.status, job.fine_tuned_model, hp, job.trained_tokens,
    job.finished_at, job.error]);
  if (dl.dataset.signature === signature) return;
  dl.dataset.signature = signature;
  const rows = [
    ["Status", badge(job.status)],
    ["Model", job.model],
    ["Fine-tuned model", job.fine_tuned_model ? h("span", {}, h("code", {}, job.fine_tuned_model),
      " ", h("a", { href: `#/models/${enc(job.fine_tuned_model)}` }, "Chat")) : ""],
    ["Method", (job.method && job.method.type) || "supervised"],
    ["Hyperparameters", Object.entries(hp).map(([k, v]) => `${k} ${v}`).join(", ")],
    ["Training file", fileLink(job.training_file, files)],
    ["Validation file", job.validation_file ? fileLink(job.validation_file, files) : "none"],
    ["Trained tokens", job.trained_tokens ?? ""],
    ["Created", when(job.created_at)],
    ["Finished", when(job.finished_at)],
  ];
  if (job.error) {
    rows.push(["Error", h("span", { class: "error", id: "job-error" }, job.error.message,
      job.error.param ? ` (${job.error.param})` : "")]);
  }
  dl.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

/** The loss curve from the job's `metrics` events: training loss per step as a line,
 * validation loss (where a step has one) as a second line, full validation loss as dots. */
function drawChart(el, events, totalSteps) {
  const series = { train: [], valid: [], full: [] };
  for (const e of events) {
    const d = e.type === "metrics" && e.data;
    if (!d || !num(d.step)) continue;
    if (num(d.train_loss)) series.train.push([d.step, d.train_loss]);
    if (num(d.valid_loss)) series.valid.push([d.step, d.valid_loss]);
    if (num(d.full_valid_loss)) series.full.push([d.step, d.full_valid_loss]);
  }
  Object.values(series).forEach((s) => s.sort((a, b) => a[0] - b[0]));
  const all = [...series.train, ...series.valid, ...series.full];
  el.replaceChildren();
  el.dataset.trainPoints = series.train.length;
  el.dataset.validPoints = series.valid.length;
  if (!all.length) {
    el.append(svg("text", { x: 320, y: 130, "text-anchor": "middle", class: "muted" },
      "No metrics yet: the curve appears with the first training step."));
    return;
  }
  const [W, H, L, R, T, B] = [640, 260, 56, 12, 12, 32];
  const xMax = Math.max(totalSteps || 0, ...all.map((p) => p[0]), 1);
  let yMin = Math.min(...all.map((p) => p[1]));
  let yMax = Math.max(...all.map((p) => p[1]));
  const pad = (yMax - yMin) * 0.05 || Math.abs(yMax) * 0.05 || 1;
  yMin -= pad;
  yMax += pad;
  const x = (s) => L + (s / xMax) * (W - L - R);
  const y = (v) => T + (1 - (v - yMin) / (yMax - yMin)) * (H - T - B);
  el.append(svg("line", { x1: L, y1: H - B, x2: W - R, y2: H - B, class: "axis" }),
    svg("line", { x1: L, y1: T, x2: L, y2: H - B, class: "axis" }));
  // Enough decimals that the five tick labels differ (losses often move in the 3rd digit).
  const decimals = Math.min(6, Math.max(0, 1 - Math.floor(Math.log10((yMax - yMin) / 4))));
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    el.append(svg("line", { x1: L, y1: y(v), x2: W - R, y2: y(v), class: "grid" }),
      svg("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end", class: "tick" },
        v.toFixed(decimals)));
  }
  el.append(svg("text", { x: L, y: H - 10, class: "tick" }, "0"),
    svg("text", { x: W - R, y: H - 10, "text-anchor": "end", class: "tick" }, `step ${xMax}`));
  const points = (s) => s.map(([a, b]) => `${x(a).toFixed(1)},${y(b).toFixed(1)}`).join(" ");
  for (const name of ["train", "valid"]) {
    if (series[name].length) {
      el.append(svg("polyline", { class: name, points: points(series[name]) }));
    }
  }
  for (const [a, b] of series.full) {
    el.append(svg("circle", { class: "full", cx: x(a), cy: y(b), r: 4 }));
  }
}

// ---- new job --------------------------------------------------------------------------------

function newJobView(view) {
  const fileInput = h("input", { id: "upload-file", type: "file", accept: ".jsonl",
    required: true });
  const uploadNote = h("p", { id: "upload-note", class: "muted" });
  const filesBody = h("tbody");
  const training = h("select", { id: "training-file", required: true });
  const validation = h("select", { id: "validation-file" });
  const model = h("select", { id: "base-model", required: true });
  const method = h("select", { id: "method" }, h("option", { value: "supervised" }, "supervised"),
    h("option", { value: "dpo" }, "dpo (preference pairs)"));
  const epochs = h("input", { id: "n-epochs", type: "number", min: 1, max: 50,
    placeholder: "auto" });
  const suffix = h("input", { id: "suffix", maxlength: 64, placeholder: "optional" });
  const jobNote = h("p", { id: "job-note", class: "error" });

  const loadFiles = async () => {
    const files = (await api("/files?purpose=fine-tune&limit=100")).data;
    filesBody.replaceChildren(...files.map((f) => h("tr", { "data-file-id": f.id },
      h("td", { class: "filename" }, f.filename), h("td", {}, h("code", {}, f.id)),
      h("td", {}, f.bytes), h("td", {}, f.status_details ? h("span", { class: "error" },
        f.status_details) : "ok"))));
    const options = (empty) => [empty && h("option", { value: "" }, empty),
      ...files.map((f) => h("option", { value: f.id }, `${f.filename} (${f.id})`))];
    const [t, v] = [training.value, validation.value];
    training.replaceChildren(...options(null).filter(Boolean));
    validation.replaceChildren(...options("none").filter(Boolean));
    // Keep the choices made; else offer the newest file that passed the checks.
    training.value = t || (files.find((f) => !f.status_details) || files[0] || {}).id || "";
    if (v) validation.value = v;
    filesBody.parentElement.dataset.loaded = "true";
    return files;
  };
  const loadModels = async () => {
    const models = (await api("/models")).data;
    // Base models are owned by the server; the others are this project's fine-tuned models,
    // which a job may continue training.
    const group = (label, list) => list.length && h("optgroup", { label },
      list.map((m) => h("option", { value: m.id }, m.id)));
    const base = (m) => m.owned_by === "tunesmith";
    model.replaceChildren(...[group("Base models", models.filter(base)),
      group("Continue a fine-tuned model", models.filter((m) => !base(m)))].filter(Boolean));
  };

  const upload = async (e) => {
    e.preventDefault();
    const form = new FormData();
    form.append("purpose", "fine-tune");
    form.append("file", fileInput.files[0]);
    uploadNote.textContent = "Uploading...";
    try {
      const f = await api("/files", { method: "POST", form });
      uploadNote.textContent = f.status_details
        ? `Uploaded ${f.filename} as ${f.id}, with problems: ${f.status_details}`
        : `Uploaded ${f.filename} as ${f.id}.`;
      await loadFiles();
      training.value = f.id;
    } catch (err) {
      uploadNote.textContent = err.message;
    }
  };
  const create = async (e) => {
    e.preventDefault();
    const hp = epochs.value ? { n_epochs: Number(epochs.value) } : {};
    const body = { model: model.value, training_file: training.value,
      method: { type: method.value, [method.value]: { hyperparameters: hp } } };
    if (validation.value) body.validation_file = validation.value;
    if (suffix.value) body.suffix = suffix.value;
    try {
      const job = await api("/fine_tuning/jobs", { method: "POST", body });
      location.hash = `#/jobs/${enc(job.id)}`;
    } catch (err) {
      jobNote.textContent = err.message;
    }
  };

  view.append(h("h1", {}, "New fine-tuning job"),
    h("h2", {}, "1. Upload a training file"),
    h("form", { id: "upload-form", onsubmit: upload },
      h("label", {}, "JSONL file ", fileInput), h("button", { type: "submit" }, "Upload")),
    uploadNote,
    h("table", { id: "files" }, h("thead", {}, h("tr", {},
      ["File", "Id", "Bytes", "Checks"].map((t) => h("th", {}, t)))), filesBody),
    h("h2", {}, "2. Start the job"),
    h("form", { id: "job-form", class: "grid", onsubmit: create },
      h("label", {}, "Model", model), h("label", {}, "Training file", training),
      h("label", {}, "Validation file", validation), h("label", {}, "Method", method),
      h("label", {}, "Epochs", epochs), h("label", {}, "Suffix", suffix),
      h("button", { type: "submit", id: "create-job" }, "Start fine-tuning")),
    jobNote);
  Promise.all([loadFiles(), loadModels()]).catch((e) => flash(e.message));
}

// ---- models and chat ------------------------------------------------------------------------

/** POSTs a streamed chat completion and calls `onText` with each piece of the answer as it
 * arrives (server-sent events read from the response body). Returns the finish reason. */
async function streamChat(body, onText) {
  const response = await api("/chat/completions", { method: "POST", raw: true,
    body: { ...body, stream: true } });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return finish;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of block.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return finish;
        const chunk = JSON.parse(data);
        if (chunk.error) throw new Error(chunk.error.message);
        for (const choice of chunk.choices || []) {
          if (choice.delta && choice.delta.content) onText(choice.delta.content);
          finish = choice.finish_reason || finish;
        }
      }
    }
  }
}

function modelsView(view, preselect) {
  const rows = h("tbody");
  const select = h("select", { id: "chat-model", required: true });
  const system = h("input", { id: "chat-system", placeholder: "System message (optional)" });
  const maxTokens = h("input", { id: "max-tokens", type: "number", min: 1, max: 4096, value: 64 });
  const temperature = h("input", { id: "temperature", type: "number", min: 0, max: 2, step: 0.1,
    value: 0.7 });
  const transcript = h("div", { id: "transcript" });
  const input = h("textarea", { id: "chat-input", rows: 3, placeholder: "Message",
    required: true });
  const send = h("button", { id: "chat-send", type: "submit" }, "Send");
  let messages = [];
  const bubble = (role, text) => {
    const body = h("div", { class: "text" }, text);
    transcript.append(h("div", { class: `msg ${role}` }, h("div", { class: "role" }, role), body));
    transcript.scrollTop = transcript.scrollHeight;
    return body;
  };
  const chat = async (e) => {
    e.preventDefault();
    const text = input.value;
    if (!text.trim() || !select.value) return;
    input.value = "";
    messages.push({ role: "user", content: text });
    bubble("user", text);
    const answer = bubble("assistant", "");
    answer.parentElement.classList.add("streaming");
    send.disabled = true;
    let reply = "";
    try {
      const head = system.value ? [{ role: "system", content: system.value }] : [];
      const finish = await streamChat({ model: select.value, messages: head.concat(messages),
        max_tokens: Number(maxTokens.value) || 64, temperature: Number(temperature.value) },
      (piece) => { reply += piece; answer.textContent = reply; });
      messages.push({ role: "assistant", content: reply });
      if (!reply) answer.append(h("span", { class: "muted" }, "(empty answer)"));
      answer.parentElement.dataset.finish = finish || "";
    } catch (err) {
      answer.append(h("span", { class: "error" }, err.message));
      messages.pop(); // the question stays on screen, but is not sent again
    } finally {
      answer.parentElement.classList.remove("streaming");
      answer.parentElement.dataset.done = "true";
      send.disabled = false;
    }
  };
  const clear = () => { messages = []; transcript.replaceChildren(); };

  view.append(h("h1", {}, "Models"),
    h("table", { id: "models" }, h("thead", {}, h("tr", {},
      ["Model", "Owned by", "Created", ""].map((t) => h("th", {}, t)))), rows),
    h("h2", {}, "Chat playground"),
    h("form", { id: "chat-form", onsubmit: chat },
      h("p", { class: "grid" }, h("label", {}, "Model", select),
        h("label", {}, "Max tokens", maxTokens), h("label", {}, "Temperature", temperature)),
      system, transcript, input,
      h("p", {}, send, " ", h("button", { type: "button", onclick: clear }, "Clear"))));

  api("/models").then((page) => {
    rows.replaceChildren(...page.data.map((m) => h("tr", { "data-model": m.id },
      h("td", {}, h("code", {}, m.id)), h("td", {}, m.owned_by), h("td", {}, when(m.created)),
      h("td", {}, h("button", { type: "button", class: "small",
        onclick: () => { select.value = m.id; input.focus(); } }, "Chat")))));
    const ids = page.data.map((m) => m.id);
    // A checkpoint (from a job page's link) is callable but not listed: offer it too.
    if (preselect && !ids.includes(preselect)) ids.push(preselect);
    select.replaceChildren(...ids.map((id) => h("option", { value: id }, id)));
    if (preselect) select.value = preselect;
    select.dataset.loaded = "true";
  }).catch((e) => flash(e.message));
}

// ---- start ----------------------------------------------------------------------------------

$("signin-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("key").value.trim();
  $("signin-error").textContent = "";
  sessionStorage.setItem(KEY, key);
  try {
    await api("/models"); // a refused key signs out again, with the server's message
    $("key").value = "";
    if (!location.hash || location.hash === "#/") location.hash = "#/jobs"; // routes on change
    else route();
  } catch (err) {
    sessionStorage.removeItem(KEY);
    $("signin-error").textContent = err.message;
  }
});
$("signout").addEventListener("click", () => signOut(""));
window.addEventListener("hashchange", route);
route();
