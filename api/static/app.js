// FastTTS web page: plain JS, no dependencies. Talks to the same API as any client, sending the
// API key (kept in localStorage) as "Authorization: Bearer <key>". Streaming requests ask for raw
// PCM and play it through Web Audio as it arrives; the finished audio lands in the <audio> player.
"use strict";

const $ = (id) => document.getElementById(id);
const OPTION_FIELDS = ["temperature", "top_k", "top_p", "repetition_penalty", "max_tokens", "length_threshold", "window_size", "seed"];
let activeTab = "speak";
let recordedBlob = null;

const keyInput = $("api-key");
keyInput.value = localStorage.getItem("fasttts-api-key") || "";
keyInput.addEventListener("change", () => { localStorage.setItem("fasttts-api-key", keyInput.value.trim()); refresh(); pollJobs(); });

function authHeaders(extra = {}) {
  const key = keyInput.value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "muted";
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body.error) return body.error.message;
    if (Array.isArray(body.detail)) return body.detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ");
    return body.detail || response.statusText;
  } catch { return `${response.status} ${response.statusText}`; }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: authHeaders(options.headers || {}) });
  if (!response.ok) {
    const message = await errorMessage(response);
    throw new Error(response.status === 401 ? `${message} — enter the API key at the top right` : message);
  }
  return response;
}

// ------------------------------------------------------------------ model info and voices
async function refresh() {
  try {
    const ready = await (await fetch("/ready")).json();
    $("model-info").textContent = ready.status === "ready" ? `${ready.model_type} · ${ready.sample_rate} Hz` : "model loading…";
    const { voices } = await (await api("/v1/audio/voices")).json();
    const select = $("speak-voice");
    const previous = select.value;
    select.innerHTML = "";
    const jobVoice = $("job-voice");
    const previousJobVoice = jobVoice.value;
    jobVoice.innerHTML = "";
    const tbody = document.querySelector("#voice-table tbody");
    tbody.innerHTML = "";
    for (const voice of voices) {
      select.add(new Option(voice.name, voice.id));
      jobVoice.add(new Option(voice.name, voice.id));
      const row = tbody.insertRow();
      row.insertCell().textContent = voice.name;
      const kind = row.insertCell();
      const actions = row.insertCell();
      const del = document.createElement("button");
      del.textContent = "Delete";
      del.onclick = () => deleteVoice(voice.id);
      actions.append(del);
      api(`/v1/audio/voices/${encodeURIComponent(voice.id)}`).then((r) => r.json()).then((v) => {
        kind.textContent = v.kind;
        if (v.kind === "builtin") del.disabled = true;
      }).catch(() => {});
    }
    if (previous) select.value = previous;
    if (previousJobVoice) jobVoice.value = previousJobVoice;
  } catch (err) { setStatus(err.message, true); }
}

async function deleteVoice(name) {
  if (!confirm(`Delete voice "${name}"?`)) return;
  try { await api(`/v1/audio/voices/${encodeURIComponent(name)}`, { method: "DELETE" }); setStatus(`deleted ${name}`); refresh(); }
  catch (err) { setStatus(err.message, true); }
}

$("add-voice-btn").onclick = async () => {
  const form = new FormData();
  form.append("name", $("new-voice-name").value.trim());
  const file = $("new-voice-file").files[0];
  if (file) form.append("reference_audio_file", file);
  else if ($("new-voice-gender").value) form.append("gender", $("new-voice-gender").value);
  if ($("new-voice-text").value.trim()) form.append("reference_text", $("new-voice-text").value.trim());
  try { await api("/v1/audio/voices", { method: "POST", body: form }); setStatus("voice added"); refresh(); }
  catch (err) { setStatus(err.message, true); }
};

// ------------------------------------------------------------------ tabs
document.querySelectorAll(".tab").forEach((tab) => tab.addEventListener("click", () => {
  activeTab = tab.dataset.tab;
  document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === `tab-${activeTab}`));
  document.body.dataset.tab = activeTab;
  $("generate-btn").disabled = activeTab === "voices";
  if (activeTab === "jobs") pollJobs();
}));

// ------------------------------------------------------------------ recording a reference
$("record-btn").onclick = async () => {
  const button = $("record-btn");
  if (button.recorder) { button.recorder.stop(); return; }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const recorder = new MediaRecorder(stream);
    const parts = [];
    recorder.ondataavailable = (e) => parts.push(e.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      recordedBlob = new Blob(parts, { type: recorder.mimeType || "audio/webm" });
      button.recorder = null;
      button.textContent = "● Record";
      $("record-status").textContent = `recorded ${(recordedBlob.size / 1024).toFixed(0)} KiB (used unless a file is chosen)`;
    };
    recorder.start();
    button.recorder = recorder;
    button.textContent = "■ Stop";
    $("record-status").textContent = "recording…";
  } catch (err) { setStatus(`microphone: ${err.message}`, true); }
};

// ------------------------------------------------------------------ synthesis
function options() {
  const values = {};
  for (const field of OPTION_FIELDS) {
    const raw = $(`opt-${field}`).value;
    if (raw !== "") values[field] = Number(raw);
  }
  if ($("opt-pitch").value) values.pitch = $("opt-pitch").value;
  if ($("opt-speed").value) values.speed = $("opt-speed").value;
  return values;
}

function buildRequest(stream, format) {
  const common = { ...options(), stream, response_format: format };
  if (activeTab === "speak") {
    return ["/speak", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...common, name: $("speak-voice").value, text: $("speak-text").value }) }];
  }
  if (activeTab === "multi") {
    delete common.pitch; delete common.speed;
    return ["/multi_speak", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ...common, text: $("multi-text").value }) }];
  }
  const form = new FormData();
  form.append("text", $("clone-text").value);
  const file = $("clone-file").files[0];
  if (file) form.append("reference_audio_file", file);
  else if (recordedBlob) form.append("reference_audio_file", recordedBlob, "recording.webm");
  else if ($("clone-url").value.trim()) form.append("reference_audio", $("clone-url").value.trim());
  if ($("clone-ref-text").value.trim()) form.append("reference_text", $("clone-ref-text").value.trim());
  for (const [k, v] of Object.entries(common)) form.append(k, String(v));
  return ["/clone_voice", { method: "POST", body: form }];
}

function wavBlob(int16, rate) {
  const header = new DataView(new ArrayBuffer(44));
  const text = (offset, s) => [...s].forEach((c, i) => header.setUint8(offset + i, c.charCodeAt(0)));
  text(0, "RIFF"); header.setUint32(4, 36 + int16.byteLength, true); text(8, "WAVE"); text(12, "fmt ");
  header.setUint32(16, 16, true); header.setUint16(20, 1, true); header.setUint16(22, 1, true);
  header.setUint32(24, rate, true); header.setUint32(28, rate * 2, true); header.setUint16(32, 2, true);
  header.setUint16(34, 16, true); text(36, "data"); header.setUint32(40, int16.byteLength, true);
  return new Blob([header, int16], { type: "audio/wav" });
}

function showResult(blob, filename) {
  const url = URL.createObjectURL(blob);
  $("player").src = url;
  $("download").href = url;
  $("download").download = filename;
  $("download").hidden = false;
}

async function playStream(response) {
  const rate = Number(response.headers.get("X-Sample-Rate"));
  const ctx = new AudioContext();
  let next = ctx.currentTime + 0.05;
  const parts = [];
  let leftover = new Uint8Array(0);
  const reader = response.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    const bytes = new Uint8Array(leftover.length + value.length);
    bytes.set(leftover); bytes.set(value, leftover.length);
    const usable = bytes.length - (bytes.length % 2);
    leftover = bytes.slice(usable);
    const int16 = new Int16Array(bytes.slice(0, usable).buffer);
    if (!int16.length) continue;
    parts.push(int16);
    const buffer = ctx.createBuffer(1, int16.length, rate);
    const channel = buffer.getChannelData(0);
    for (let i = 0; i < int16.length; i++) channel[i] = int16[i] / 32768;
    const source = ctx.createBufferSource();
    source.buffer = buffer;
    source.connect(ctx.destination);
    next = Math.max(next, ctx.currentTime);
    source.start(next);
    next += buffer.duration;
    setStatus(`streaming… ${(parts.reduce((n, p) => n + p.length, 0) / rate).toFixed(1)} s`);
  }
  const all = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) { all.set(p, offset); offset += p.length; }
  showResult(wavBlob(all, rate), "speech.wav");
  return all.length / rate;
}

$("generate-btn").onclick = async () => {
  const button = $("generate-btn");
  const stream = $("opt-stream").checked;
  const format = stream ? "pcm" : $("opt-format").value;
  button.disabled = true;
  setStatus("generating…");
  const started = performance.now();
  try {
    const [path, init] = buildRequest(stream, format);
    const response = await api(path, init);
    if (stream) {
      const seconds = await playStream(response);
      setStatus(`${seconds.toFixed(1)} s of audio in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    } else {
      const blob = await response.blob();
      if (format === "pcm") {  // raw samples: wrap them so the player can play them
        showResult(wavBlob(new Int16Array(await blob.arrayBuffer()), Number(response.headers.get("X-Sample-Rate"))), "speech.wav");
      } else {
        showResult(blob, `speech.${format}`);
      }
      setStatus(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    }
  } catch (err) {
    setStatus(err.message, true);
  } finally {
    button.disabled = false;
  }
};

// ------------------------------------------------------------------ jobs
// Submit a book or pasted text as an audiobook job, then poll GET /v1/jobs while the tab is open:
// progress (segments, percent, ETA), cancel, delete, and downloads of every result. Downloads go
// through fetch so the API key is sent; a result on S3 is a presigned URL and needs no key.
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
let pollTimer = null;

function jobStatus(text, isError = false) {
  $("job-status").textContent = text;
  $("job-status").className = isError ? "error" : "muted";
}

$("job-submit-btn").onclick = async () => {
  const request = { kind: "audiobook", output_format: $("job-format").value, voice: { name: $("job-voice").value } };
  const file = $("job-file").files[0];
  const text = $("job-text").value.trim();
  let init;
  if (file) {
    const form = new FormData();
    form.append("request", JSON.stringify(request));
    form.append("file", file);
    init = { method: "POST", body: form };
  } else if (text) {
    init = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ ...request, text }) };
  } else { jobStatus("choose a book file or paste some text", true); return; }
  try {
    const job = await (await api("/v1/jobs", init)).json();
    jobStatus(`submitted ${job.id}`);
    $("job-file").value = "";
    pollJobs();
  } catch (err) { jobStatus(err.message, true); }
};

function formatSeconds(s) {
  if (s === null || s === undefined) return "";
  return s < 90 ? `${Math.round(s)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

async function download(url, filename) {
  if (new URL(url, location.href).origin !== location.origin) { window.open(url, "_blank"); return; }
  try {
    const blob = await (await api(url)).blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = filename;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 60_000);
  } catch (err) { jobStatus(err.message, true); }
}

async function jobAction(job, action) {
  try {
    if (action === "cancel") await api(`/v1/jobs/${encodeURIComponent(job.id)}/cancel`, { method: "POST" });
    else if (confirm(`Delete job ${job.id} and its audio?`)) await api(`/v1/jobs/${encodeURIComponent(job.id)}`, { method: "DELETE" });
    pollJobs();
  } catch (err) { jobStatus(err.message, true); }
}

function button(label, onclick, className = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.className = className;
  b.onclick = onclick;
  return b;
}

function renderJob(job) {
  const card = document.createElement("div");
  card.className = "job";
  card.dataset.id = job.id;
  card.dataset.status = job.status;
  const head = document.createElement("div");
  head.className = "job-head";
  const badge = document.createElement("span");
  badge.className = `badge ${job.status}`;
  badge.textContent = job.status;
  const id = document.createElement("span");
  id.className = "job-id";
  id.textContent = job.id;
  const when = document.createElement("span");
  when.className = "muted";
  when.textContent = `${job.kind} · ${job.output_format} · ${new Date(job.created_at).toLocaleString()}`;
  head.append(badge, id, when);
  const p = job.progress;
  const bar = document.createElement("progress");
  bar.max = 100;
  bar.value = p.percent;
  const detail = document.createElement("div");
  detail.className = "muted progress-text";
  const eta = !FINAL.has(job.status) && p.eta_s !== null ? ` · ETA ${formatSeconds(p.eta_s)}` : "";
  detail.textContent = `${p.segments_done}/${p.segments_total} segments · ${p.percent.toFixed(0)}% · ${p.audio_seconds.toFixed(1)} s of audio${eta}`;
  card.append(head, bar, detail);
  if (job.error) {
    const error = document.createElement("div");
    error.className = "error";
    error.textContent = job.error;
    card.append(error);
  }
  const results = document.createElement("div");
  results.className = "results";
  for (const [name, url] of Object.entries(job.results)) {
    const link = document.createElement("a");
    link.textContent = name;
    link.dataset.result = name;
    link.onclick = () => download(url, `${job.id}-${name.replaceAll("/", "-")}`);
    results.append(link);
  }
  const actions = document.createElement("div");
  actions.className = "actions";
  if (!FINAL.has(job.status)) actions.append(button("Cancel", () => jobAction(job, "cancel"), "cancel"));
  actions.append(button("Delete", () => jobAction(job, "delete"), "delete"));
  card.append(results, actions);
  return card;
}

async function pollJobs() {
  clearTimeout(pollTimer);
  if (activeTab !== "jobs") return;
  let busy = true;
  try {
    const { data } = await (await api("/v1/jobs?limit=50")).json();
    $("job-list").replaceChildren(...data.map(renderJob));
    $("job-empty").hidden = data.length > 0;
    busy = data.some((job) => !FINAL.has(job.status));
  } catch (err) { jobStatus(err.message, true); }
  pollTimer = setTimeout(pollJobs, busy ? 1000 : 5000);  // every second while a job is in progress
}

document.body.dataset.tab = activeTab;
refresh();
