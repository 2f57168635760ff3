// kino studio: a page over the server's own API (/v1/videos and kino's extensions). No build step.
// The choices (sizes, lengths) come from /v1/kino/options; the gallery polls /v1/videos once a second
// (the newest page; older pages on demand) and updates every card at once.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const PAGE = 24;
const state = { options: null, cards: new Map(), blobs: new Map(), badges: new Map(), older: [], olderAfter: null,
                connectFrom: null };

function apiKey() { return localStorage.getItem("kino-api-key") || ""; }

async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  if (apiKey()) headers.set("Authorization", `Bearer ${apiKey()}`);
  headers.set("X-Kino-CSRF", "1");  // a server without keys accepts changes only from pages that can send it
  const res = await fetch(path, { ...init, headers });
  if (res.status === 401) { $("#key-box").hidden = false; throw new Error("an API key is needed"); }
  if (!res.ok) {
    let msg = `${res.status}`;
    try { msg = (await res.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return res;
}

let sayTimer = null;
function say(text, bad = false) {
  const s = $("#status");
  s.textContent = text;
  s.style.color = bad ? "var(--bad)" : "";
  s.dataset.bad = bad ? "1" : "";
  clearTimeout(sayTimer);
  if (bad) sayTimer = setTimeout(() => { if (s.textContent === text) say(""); }, 10000);  // an error does not stay
}

// -- choices ---------------------------------------------------------------------------------------

function fillSelect(sel, values, chosen) {
  sel.replaceChildren(...values.map(([value, label]) => {
    const o = document.createElement("option");
    o.value = value; o.textContent = label; o.selected = value === chosen;
    return o;
  }));
}

function offer() {  // the chosen model's sizes by aspect, default size and length (each served model has its own)
  const o = state.options;
  const m = o.served && o.served[chosenModel() || o.model];
  if (!m || !m.sizes) return { sizes: o.sizes, size: o.default_size, seconds: o.default_seconds };
  const area = (s) => s.split("x").reduce((a, b) => a * Number(b), 1);
  const sizes = { square: [], landscape: [], portrait: [] };
  for (const s of m.sizes) {
    const [w, h] = s.split("x").map(Number);
    sizes[w === h ? "square" : w > h ? "landscape" : "portrait"].push(s);
  }
  for (const a of Object.keys(sizes)) sizes[a].sort((p, q) => area(p) - area(q));
  return { sizes, size: m.default_size, seconds: m.default_seconds };
}

function fillSizes(aspectSel, sizeSel) {
  const { sizes: all, size } = offer();
  const sizes = all[aspectSel.value] || [];
  fillSelect(sizeSel, sizes.map((s) => [s, s]), sizes.includes(size) ? size : sizes[0]);
}

function fillChoices() {  // the length, aspect and size choices of the chosen model
  const { sizes, size, seconds } = offer();
  const secs = [1, 2, 4, 8, 12, 16, 20].filter((s) => s <= state.options.max_seconds);
  fillSelect($("#seconds"), secs.map((s) => [String(s), `${s} s`]), seconds);
  if (![...$("#seconds").options].some((x) => x.selected)) $("#seconds").value = String(secs[0]);
  const aspects = Object.keys(sizes).filter((a) => sizes[a].length);
  const defAspect = aspects.find((a) => sizes[a].includes(size)) || aspects[0];
  for (const [a, s] of [["#aspect", "#size"], ["#board-aspect", "#board-size"]]) {
    fillSelect($(a), aspects.map((x) => [x, x]), defAspect);
    fillSizes($(a), $(s));
  }
}

function chosenModel() {  // the picked model, or none when the server serves one (requests then name none)
  return $("#model-box").hidden ? null : $("#model-pick").value;
}

function applyModel() {
  const o = state.options;
  const name = chosenModel() || o.model;
  const modes = (o.served && o.served[name] && o.served[name].modes) || o.modes;
  $("#model").textContent = `model ${name}`;
  // the LoRAs the server applies to this model (kino serve --lora FILE[:SCALE]), with their scales
  const loras = (o.served && o.served[name] && o.served[name].loras) || [];
  $("#loras").textContent = loras.length ? `LoRA ${loras.map((l) => `${l.name} \u00d7${l.scale}`).join(", ")}` : "";
  $("#loras").title = loras.map((l) => `${l.name}: scale ${l.scale}, ${l.expert}-noise expert`).join("\n");
  $("#loras").hidden = !loras.length;
  // only the modes this model can do (an older server sends none: show all)
  const can = (m) => !modes || !modes.length || modes.includes(m);
  state.can = can;
  $("#tab-board").hidden = !can("storyboard");
  $("#tab-interp").hidden = !can("interpolate");
  $("#image").closest("label").style.display = can("image-to-video") ? "" : "none";  // CSS sets labels' display
  if (document.querySelector(".tab.active[hidden]")) $("#tab-prompt").click();
  for (const card of document.querySelectorAll(".card")) {
    for (const m of ["extend", "edit", "loop", "connect"]) $(`.${m}`, card).style.display = can(m) ? "" : "none";
  }
}

async function loadOptions() {
  const o = await (await api("/v1/kino/options")).json();
  state.options = o;
  // several served models: a picker; the tabs, inputs and buttons follow the chosen model's modes
  const names = Object.keys(o.served || {});
  fillSelect($("#model-pick"), names.map((n) => [n, `${n} (${o.served[n].family})`]), o.model);
  $("#model-box").hidden = names.length < 2;
  $("#model-pick").addEventListener("change", () => { applyModel(); fillChoices(); });
  applyModel();
  fillChoices();
  for (const [a, s] of [["#aspect", "#size"], ["#board-aspect", "#board-size"]]) {
    $(a).addEventListener("change", () => fillSizes($(a), $(s)));
  }
}

// -- creating ----------------------------------------------------------------------------------------

async function post(path, body) {
  const isForm = body instanceof FormData;
  const model = chosenModel();
  if (model && isForm && !body.has("model")) body.append("model", model);
  else if (model && !isForm) body = { model, ...body };
  const init = isForm ? { method: "POST", body } :
    { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  const video = await (await api(path, init)).json();
  say(`queued ${video.id}`);
  await refresh();
  return video;
}

function promptText() {
  const p = $("#prompt").value.trim();
  if (!p) { say("write a prompt first", true); throw new Error("no prompt"); }
  return p;
}

function optionalPrompt() {  // modes that need no prompt (extend, loop, interpolate, connect): none when empty
  const p = $("#prompt").value.trim();
  return p ? { prompt: p } : {};
}

function seedField() {
  const s = $("#seed").value.trim();
  return s === "" ? {} : { seed: Number(s) };
}

async function guarded(fn) {
  try { await fn(); } catch (e) { if (e.message !== "no prompt") say(e.message, true); }
}

$("#prompt-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  guarded(() => {
    const fields = { prompt: promptText(), seconds: $("#seconds").value, size: $("#size").value, ...seedField() };
    const image = $("#image").files[0];
    if (!image) return post("/v1/videos", fields);
    const form = new FormData();  // image to video: the image as an upload
    for (const [k, v] of Object.entries(fields)) form.append(k, String(v));
    form.append("input_reference", image);
    return post("/v1/videos", form);
  });
});

$("#interp-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  guarded(() => {
    const files = [...$("#keyframes").files];
    if (files.length < 2) { say("choose 2 or more keyframe images", true); throw new Error("no prompt"); }
    const form = new FormData();
    for (const [k, v] of Object.entries({ ...optionalPrompt(), size: $("#size").value, ...seedField() })) form.append(k, String(v));
    const times = $("#key-times").value.split(",").map((t) => t.trim()).filter((t) => t);
    if (times.length) for (const t of times) form.append("key_times[]", t);
    else form.append("seconds", $("#seconds").value);
    for (const f of files) form.append("keyframes", f);
    return post("/v1/videos/interpolations", form);
  });
});

// -- storyboard editor: add, reorder, remove shots -----------------------------------------------------

function addShot(prompt = "", seconds = 1, transition = "continuous") {
  const li = document.createElement("li");
  li.className = "shot";
  li.innerHTML = `<textarea class="shot-prompt" placeholder="what happens in this shot"></textarea>
    <div class="shot-controls">
      <input class="shot-seconds" type="number" min="0.5" step="0.5" title="seconds">
      <select class="shot-transition"><option value="continuous">continuous</option><option value="cut">cut</option></select>
      <button type="button" class="up" title="move up">↑</button>
      <button type="button" class="down" title="move down">↓</button>
      <button type="button" class="remove" title="remove">✕</button>
    </div>`;
  $(".shot-prompt", li).value = prompt;
  $(".shot-seconds", li).value = seconds;
  $(".shot-transition", li).value = transition;
  $(".up", li).onclick = () => li.previousElementSibling && li.parentNode.insertBefore(li, li.previousElementSibling);
  $(".down", li).onclick = () => li.nextElementSibling && li.parentNode.insertBefore(li.nextElementSibling, li);
  $(".remove", li).onclick = () => li.remove();
  $("#shots").append(li);
}

function shots() {
  return [...document.querySelectorAll("#shots .shot")].map((li) => ({
    prompt: $(".shot-prompt", li).value.trim(),
    seconds: Number($(".shot-seconds", li).value),
    transition: $(".shot-transition", li).value,
  }));
}

$("#add-shot").onclick = () => addShot();
$("#board-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const body = { shots: shots(), size: $("#board-size").value, ...seedField() };
  const subject = $("#subject").value.trim();
  if (subject) body.subject = subject;
  guarded(() => post("/v1/videos/storyboards", body));
});

const TABS = [["#tab-prompt", "#prompt-form"], ["#tab-board", "#board-form"], ["#tab-interp", "#interp-form"]];
for (const [tab, form] of TABS) {
  $(tab).onclick = () => {
    for (const [t, f] of TABS) { $(f).hidden = f !== form; $(t).classList.toggle("active", t === tab); }
  };
}

// -- gallery -------------------------------------------------------------------------------------------

async function blobUrl(id, variant = "video") {
  const key = `${id}:${variant}`;
  if (!state.blobs.has(key)) {
    const res = await api(`/v1/videos/${id}/content?variant=${variant}`);
    state.blobs.set(key, URL.createObjectURL(await res.blob()));
  }
  return state.blobs.get(key);
}

async function showBadge(card, id) {
  if (state.badges.has(id)) return;
  state.badges.set(id, "pending");
  const badge = $(".badge", card);
  try {
    const p = await (await api(`/v1/videos/${id}/provenance`)).json();
    const ok = p.outcome === "ok";
    badge.textContent = ok ? "C2PA ✓ verified" : `C2PA: ${p.outcome.replace("_", " ")}`;
    badge.className = `badge ${ok ? "ok" : "bad"}`;
    badge.title = p.explanation + (p.signer ? ` (signed by ${p.signer})` : "");
    state.badges.set(id, p.outcome);
  } catch (e) {
    badge.textContent = "C2PA: unknown"; badge.className = "badge bad"; state.badges.delete(id);
  }
}

function makeCard(v) {
  const card = $("#card").content.firstElementChild.cloneNode(true);
  card.dataset.id = v.id;
  const ref = { video: { id: v.id } };
  $(".extend", card).onclick = () => guarded(() => post("/v1/videos/extensions", { ...optionalPrompt(), seconds: $("#seconds").value, ...ref }));
  $(".remix", card).onclick = () => guarded(() => post(`/v1/videos/${v.id}/remix`, { prompt: promptText() }));
  $(".edit", card).onclick = () => guarded(() => post("/v1/videos/edits", { prompt: promptText(), ...seedField(), ...ref }));
  $(".loop", card).onclick = () => guarded(() => post("/v1/videos/loops", { ...optionalPrompt(), seconds: "1", ...ref }));
  $(".connect", card).onclick = () => guarded(async () => {
    const from = state.connectFrom;
    if (!from || from === v.id) {  // the first video of the transition
      for (const c of state.cards.values()) c.classList.remove("picked");
      state.connectFrom = from === v.id ? null : v.id;
      card.classList.toggle("picked", state.connectFrom === v.id);
      if (state.connectFrom) say("now press Connect on the video to go to");
      return;
    }
    state.connectFrom = null;
    for (const c of state.cards.values()) c.classList.remove("picked");
    await post("/v1/videos/connections", { ...optionalPrompt(), seconds: "1", videos: [{ id: from }, { id: v.id }] });
  });
  $(".download", card).onclick = () => guarded(async () => {
    const a = document.createElement("a");
    a.href = await blobUrl(v.id); a.download = `${v.id}.mp4`; a.click();
  });
  $(".delete", card).onclick = () => guarded(async () => {
    await api(`/v1/videos/${v.id}`, { method: "DELETE" });
    card.remove(); state.cards.delete(v.id);
  });
  return card;
}

async function update(card, v) {
  $(".prompt", card).textContent = v.prompt || "";
  $(".enhanced", card).textContent = v.enhanced_prompt ? `model saw: ${v.enhanced_prompt}` : "";
  $(".mode", card).textContent = v.mode;
  $(".size", card).textContent = `${v.size}, ${v.seconds} s`;
  $(".seed", card).textContent = v.seed !== null && v.seed !== undefined ? `seed ${v.seed}` : "";
  $(".state", card).textContent = v.status.replace("_", " ");
  const bar = $("progress", card);
  bar.value = v.progress;
  card.dataset.status = v.status;
  card.dataset.progress = String(v.progress);
  $(".error", card).textContent = v.error ? `${v.error.code}: ${v.error.message}` : "";
  const done = v.status === "completed";
  for (const b of card.querySelectorAll(".extend, .remix, .edit, .loop, .connect, .download")) b.disabled = !done;
  for (const m of ["extend", "edit", "loop", "connect"]) $(`.${m}`, card).style.display = !state.can || state.can(m) ? "" : "none";
  if (done && !card.dataset.loaded) {
    card.dataset.loaded = "1";
    bar.hidden = true;
    try {
      $(".thumb", card).src = await blobUrl(v.id, "thumbnail");
      const video = $("video", card);
      video.src = await blobUrl(v.id);
      video.hidden = false;
      $(".thumb", card).hidden = true;
      video.play().catch(() => { /* autoplay may be refused; the controls remain */ });
    } catch (e) { delete card.dataset.loaded; }
    showBadge(card, v.id);
  }
}

let refreshing = false;
async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    let page;
    try { page = await (await api(`/v1/videos?limit=${PAGE}`)).json(); } catch (e) { say(e.message, true); return; }
    if (state.older.length === 0) { state.olderAfter = page.has_more ? page.last_id : null; }
    show([...page.data, ...state.older]);
  } finally { refreshing = false; }
}

function show(videos) {  // newest first; every card updates at once (their media load in parallel)
  const gallery = $("#gallery");
  const seen = new Set();
  for (const v of videos) {
    if (seen.has(v.id)) continue;
    seen.add(v.id);
    let card = state.cards.get(v.id);
    if (!card) { card = makeCard(v); state.cards.set(v.id, card); }
    gallery.append(card);  // keeps the server's order
    update(card, v);
  }
  for (const [id, card] of state.cards) if (!seen.has(id)) { card.remove(); state.cards.delete(id); }
  $("#more").hidden = !state.olderAfter;
}

$("#more").onclick = () => guarded(async () => {  // the next page of older videos (kept until reload)
  const page = await (await api(`/v1/videos?limit=${PAGE}&after=${state.olderAfter}`)).json();
  state.older.push(...page.data);
  state.olderAfter = page.has_more ? page.last_id : null;
  await refresh();
});

$("#api-key").addEventListener("change", async (ev) => {
  localStorage.setItem("kino-api-key", ev.target.value.trim());
  await start();
});

async function start() {
  try {
    await loadOptions();
    say("ready");
  } catch (e) { say(e.message, true); return; }
  await refresh();
}

addShot("", 1); addShot("", 1, "cut");
start();
setInterval(() => { if (state.options) refresh(); }, 1000);
