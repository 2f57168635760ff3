// kino studio: a page over the server's own API (/v1/videos and kino's extensions). No build step.
// The choices (sizes, lengths) come from /v1/kino/options; the gallery polls /v1/videos once a second.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const state = { options: null, cards: new Map(), blobs: new Map(), badges: new Map() };

function apiKey() { return localStorage.getItem("kino-api-key") || ""; }

async function api(path, init = {}) {
  const headers = new Headers(init.headers || {});
  if (apiKey()) headers.set("Authorization", `Bearer ${apiKey()}`);
  const res = await fetch(path, { ...init, headers });
  if (res.status === 401) { $("#key-box").hidden = false; throw new Error("an API key is needed"); }
  if (!res.ok) {
    let msg = `${res.status}`;
    try { msg = (await res.json()).error.message; } catch (e) { /* not JSON */ }
    throw new Error(msg);
  }
  return res;
}

function say(text, bad = false) {
  const s = $("#status");
  s.textContent = text;
  s.style.color = bad ? "var(--bad)" : "";
}

// -- choices ---------------------------------------------------------------------------------------

function fillSelect(sel, values, chosen) {
  sel.replaceChildren(...values.map(([value, label]) => {
    const o = document.createElement("option");
    o.value = value; o.textContent = label; o.selected = value === chosen;
    return o;
  }));
}

function fillSizes(aspectSel, sizeSel) {
  const sizes = state.options.sizes[aspectSel.value] || [];
  fillSelect(sizeSel, sizes.map((s) => [s, s]), sizes.includes(state.options.default_size) ? state.options.default_size : sizes[0]);
}

async function loadOptions() {
  const o = await (await api("/v1/kino/options")).json();
  state.options = o;
  $("#model").textContent = `model ${o.model}`;
  const secs = [1, 2, 4, 8, 12, 16, 20].filter((s) => s <= o.max_seconds);
  fillSelect($("#seconds"), secs.map((s) => [String(s), `${s} s`]), o.default_seconds);
  if (![...$("#seconds").options].some((x) => x.selected)) $("#seconds").value = String(secs[0]);
  const aspects = Object.keys(o.sizes).filter((a) => o.sizes[a].length);
  const defAspect = aspects.find((a) => o.sizes[a].includes(o.default_size)) || aspects[0];
  for (const [a, s] of [["#aspect", "#size"], ["#board-aspect", "#board-size"]]) {
    fillSelect($(a), aspects.map((x) => [x, x]), defAspect);
    fillSizes($(a), $(s));
    $(a).addEventListener("change", () => fillSizes($(a), $(s)));
  }
}

// -- creating ----------------------------------------------------------------------------------------

async function post(path, body) {
  const res = await api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const video = await res.json();
  say(`queued ${video.id}`);
  await refresh();
  return video;
}

function promptText() {
  const p = $("#prompt").value.trim();
  if (!p) { say("write a prompt first", true); throw new Error("no prompt"); }
  return p;
}

async function guarded(fn) {
  try { await fn(); } catch (e) { if (e.message !== "no prompt") say(e.message, true); }
}

$("#prompt-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  guarded(() => post("/v1/videos", { prompt: promptText(), seconds: $("#seconds").value, size: $("#size").value }));
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
  const body = { shots: shots(), size: $("#board-size").value };
  const subject = $("#subject").value.trim();
  if (subject) body.subject = subject;
  guarded(() => post("/v1/videos/storyboards", body));
});

for (const [tab, show, hide, other] of [["#tab-prompt", "#prompt-form", "#board-form", "#tab-board"],
                                        ["#tab-board", "#board-form", "#prompt-form", "#tab-prompt"]]) {
  $(tab).onclick = () => {
    $(show).hidden = false; $(hide).hidden = true;
    $(tab).classList.add("active"); $(other).classList.remove("active");
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
  $(".extend", card).onclick = () => guarded(() => post("/v1/videos/extensions", { prompt: promptText(), seconds: $("#seconds").value, video: { id: v.id } }));
  $(".remix", card).onclick = () => guarded(() => post(`/v1/videos/${v.id}/remix`, { prompt: promptText() }));
  $(".loop", card).onclick = () => guarded(() => post("/v1/videos/loops", { prompt: v.prompt || promptText(), video: { id: v.id } }));
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
  $(".mode", card).textContent = v.mode;
  $(".size", card).textContent = `${v.size}, ${v.seconds} s`;
  $(".state", card).textContent = v.status.replace("_", " ");
  const bar = $("progress", card);
  bar.value = v.progress;
  card.dataset.status = v.status;
  card.dataset.progress = String(v.progress);
  $(".error", card).textContent = v.error ? `${v.error.code}: ${v.error.message}` : "";
  const done = v.status === "completed";
  for (const b of card.querySelectorAll(".extend, .remix, .loop, .download")) b.disabled = !done;
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

async function refresh() {
  let page;
  try { page = await (await api("/v1/videos?limit=50")).json(); } catch (e) { say(e.message, true); return; }
  const gallery = $("#gallery");
  const seen = new Set();
  for (const v of page.data) {  // newest first
    seen.add(v.id);
    let card = state.cards.get(v.id);
    if (!card) { card = makeCard(v); state.cards.set(v.id, card); }
    gallery.append(card);  // keeps the server's order
    await update(card, v);
  }
  for (const [id, card] of state.cards) if (!seen.has(id)) { card.remove(); state.cards.delete(id); }
}

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
