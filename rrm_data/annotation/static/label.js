"use strict";
// The token comes from the URL fragment (#token=...), which browsers never send to a server.
const token = new URLSearchParams(location.hash.slice(1)).get("token") || "";
const $ = (id) => document.getElementById(id);
const videos = [$("left"), $("right")];
const state = { item: null, openedAt: 0, busy: false };
window.__rrm = { ready: [], answered: 0 };  // read by tests and the benchmark

function status(text) { $("status").textContent = text; }
// crypto.randomUUID exists only in secure contexts (https, localhost); this works everywhere.
function requestId() {
  return [...crypto.getRandomValues(new Uint8Array(16))]
    .map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function api(path, options = {}) {
  const headers = { Authorization: "Bearer " + token, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers, cache: "no-store" });
  const body = response.headers.get("content-type")?.includes("json") ? await response.json()
                                                                        : await response.blob();
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function playBoth() {
  const rate = Number($("speed").value);
  for (const v of videos) v.playbackRate = rate;
  return Promise.all(videos.map((v) => v.play()));
}
function pauseBoth() { for (const v of videos) v.pause(); }
function togglePlay() { videos[0].paused ? playBoth() : pauseBoth(); }
function replay() { for (const v of videos) v.currentTime = 0; playBoth(); }
function setSpeed(step) {
  const select = $("speed");
  select.selectedIndex = Math.min(select.options.length - 1, Math.max(0, select.selectedIndex + step));
  for (const v of videos) v.playbackRate = Number(select.value);
}
// Both clips loop; keep the right clip on the left clip's clock.
videos[0].addEventListener("timeupdate", () => {
  if (Math.abs(videos[1].currentTime - videos[0].currentTime) > 0.05) {
    videos[1].currentTime = videos[0].currentTime;
  }
});

function bothPlaying() {
  return Promise.all(videos.map((v) => new Promise((resolve) =>
    v.addEventListener("playing", resolve, { once: true }))));
}

async function next() {
  state.busy = true;
  state.openedAt = performance.now();
  status("loading…");
  const data = await api("/api/next");
  $("who").textContent = `${data.annotator} · ${data.answered} of ${data.total} answered`;
  $("question").textContent = data.criterion;  // the campaign's question, as text
  document.title = `rrm-data · ${data.criterion}`;
  if (!data.item) {
    $("main").hidden = true;
    status("All done: every comparison in your queue is answered. Thank you!");
    state.item = null;
    return;
  }
  state.item = data.item;
  window.__rrm.item = data.item.id;
  $("task-left").textContent = data.item.tasks[0];  // text, never HTML
  $("task-right").textContent = data.item.tasks[1];
  document.querySelector('input[name=confidence][value="2"]').checked = true;
  const [left, right] = await Promise.all([api(data.item.left), api(data.item.right)]);
  for (const v of videos) if (v.src) URL.revokeObjectURL(v.src);
  videos[0].src = URL.createObjectURL(left);
  videos[1].src = URL.createObjectURL(right);
  $("main").hidden = false;
  const playing = bothPlaying();
  await playBoth();
  await playing;
  const ms = performance.now() - state.openedAt;
  window.__rrm.ready.push(ms);
  status(`comparison ${data.answered + 1} ready in ${Math.round(ms)} ms`);
  state.busy = false;
}

async function answer(choice) {
  if (state.busy || !state.item) return;
  state.busy = true;
  const confidence = choice === "skip" ? null
    : Number(document.querySelector("input[name=confidence]:checked").value);
  const body = JSON.stringify({
    item_id: state.item.id, choice, confidence, request_id: requestId(),
    seconds: Math.round((performance.now() - state.openedAt)) / 1000,
  });
  // The same request_id on a retry: the server stores the answer once.
  for (let attempt = 0; ; attempt++) {
    try {
      await api("/api/label", { method: "POST", body,
                                headers: { "Content-Type": "application/json" } });
      break;
    } catch (err) {
      if (attempt >= 4 || !(err instanceof TypeError)) { status("not saved: " + err.message); state.busy = false; return; }
      await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
    }
  }
  window.__rrm.answered += 1;
  await next().catch((err) => status("error: " + err.message));
}

document.querySelectorAll("[data-choice]").forEach((b) =>
  b.addEventListener("click", () => answer(b.dataset.choice)));
$("play").addEventListener("click", togglePlay);
$("replay").addEventListener("click", replay);
$("speed").addEventListener("change", () => setSpeed(0));
document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const keys = {
    ArrowLeft: () => answer("left"), ArrowRight: () => answer("right"),
    ArrowDown: () => answer("equal"), "=": () => answer("equal"), s: () => answer("skip"),
    " ": togglePlay, r: replay, "-": () => setSpeed(-1), "+": () => setSpeed(1),
  };
  if (["1", "2", "3"].includes(e.key)) {
    document.querySelector(`input[name=confidence][value="${e.key}"]`).checked = true;
  } else if (keys[e.key]) {
    e.preventDefault();
    keys[e.key]();
  }
});

if (!token) status("Open the link with your token (…/#token=…) that rrm-data annotate printed.");
else next().catch((err) => status("error: " + err.message));
