// cgDDI review page: keyboard-driven review of the build's queues; every decision is POSTed and
// appended (fsynced) to the decisions CSV by the server before the page moves on.
"use strict";
const KEYS = { "1": "lesion_remains", "2": "unrealistic_texture", "3": "wrong_tone", "4": "artefact",
               "m": "bad_mask", "o": "other" };
const NAMES = { healthy: "healthy synthetics", masks: "automatic masks", lesion_map: "lesion maps",
                semantic: "semantic images" };
const VIEW_NAMES = { photo: "source photo", overlay: "region overlay", image: "result", base: "healthy base" };
const token = new URLSearchParams(location.search).get("token");
const state = { queues: {}, decisions: {}, reviewer: "", queue: "healthy", list: [], pos: 0 };
const $ = (id) => document.getElementById(id);

function url(path, params) {
  const q = new URLSearchParams(params || {});
  if (token) q.set("token", token);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function api(path, opts) {
  const res = await fetch(url(path), opts);
  const body = await res.json();
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function mine(id) { return (state.decisions[id] || {})[state.reviewer]; }

function filtered() {
  const tone = $("f-tone").value, disease = $("f-disease").value, flag = $("f-flag").value;
  let items = state.queues[state.queue] || [];
  items = items.filter((it) => (!tone || it.tone === tone) && (!disease || it.disease === disease)
    && (!flag || (flag === "*" ? it.flags.length > 0 : it.flags.includes(flag)))
    && (!$("f-open").checked || !mine(it.id)));
  if ($("f-sort").checked) items = items.slice().sort((a, b) => b.flags.length - a.flags.length);
  return items;
}

function fillSelect(sel, values) {
  const keep = sel.value;
  while (sel.options.length > (sel.id === "f-flag" ? 2 : 1)) sel.remove(sel.options.length - 1);
  for (const v of values) sel.add(new Option(v, v));
  sel.value = values.includes(keep) ? keep : "";
}

function refreshFilters() {
  const items = state.queues[state.queue] || [];
  const uniq = (f) => [...new Set(items.flatMap(f))].sort();
  fillSelect($("f-tone"), uniq((it) => [it.tone]));
  fillSelect($("f-disease"), uniq((it) => [it.disease]));
  fillSelect($("f-flag"), uniq((it) => it.flags));
}

function tabs() {
  const nav = $("tabs");
  nav.textContent = "";
  for (const q of Object.keys(NAMES)) {
    const items = state.queues[q] || [];
    const done = items.filter((it) => mine(it.id)).length;
    const b = document.createElement("button");
    b.textContent = `${NAMES[q]} ${done}/${items.length}`;
    b.className = q === state.queue ? "active" : "";
    b.dataset.queue = q;
    b.onclick = () => switchQueue(q);
    nav.appendChild(b);
  }
}

function switchQueue(q) {
  state.queue = q;
  refreshFilters();
  const open = filtered().findIndex((it) => !mine(it.id));  // resume at the first item you have not decided
  state.pos = open < 0 ? 0 : open;
  render();
}

function render() {
  tabs();
  state.list = filtered();
  const all = state.queues[state.queue] || [];
  const left = all.filter((it) => !mine(it.id)).length;
  const views = $("views");
  views.textContent = "";
  $("meta").textContent = "";
  $("others").textContent = "";
  if (!state.list.length) {
    $("status").innerHTML = "";
    $("status").textContent = all.length ? "no item matches the filters" : "this queue is empty";
    return;
  }
  state.pos = Math.max(0, Math.min(state.pos, state.list.length - 1));
  const it = state.list[state.pos];
  $("status").textContent = `${NAMES[state.queue]}: item ${state.pos + 1} of ${state.list.length}` +
    ` (${all.length - left} of ${all.length} decided by you)` + (left ? "" : " - queue done");
  $("status").className = left ? "" : "done";
  for (const v of it.views) {
    const fig = document.createElement("figure");
    const img = document.createElement("img");
    img.src = url("/img", { q: state.queue, id: it.id, v: v });
    img.alt = `${VIEW_NAMES[v] || v} of ${it.id}`;
    img.onclick = () => zoom(img.src);
    const cap = document.createElement("figcaption");
    cap.textContent = VIEW_NAMES[v] || v;
    fig.append(img, cap);
    views.appendChild(fig);
  }
  renderMeta(it);
}

function renderMeta(it) {
  const meta = $("meta");
  const parts = [`id ${it.id}`, `tone ${it.tone}`, `disease ${it.disease}`];
  if (it.info.confidence != null) parts.push(`confidence ${Number(it.info.confidence).toFixed(2)}`);
  meta.textContent = parts.join(" · ") + "  ";
  for (const f of it.flags) {
    const m = it.measures.find((x) => x.flag === f);
    const s = document.createElement("span");
    s.className = "flag";
    s.textContent = `${f} ${m ? m.value : ""}`;
    meta.appendChild(s);
  }
  const ds = state.decisions[it.id] || {};
  const others = $("others");
  const kinds = new Set(Object.values(ds).map((d) => d.decision));
  for (const [who, d] of Object.entries(ds)) {
    const s = document.createElement("span");
    s.className = `decision ${d.decision}`;
    s.textContent = `${who}: ${d.decision}${d.criterion ? " (" + d.criterion + ")" : ""}${d.note ? " - " + d.note : ""}`;
    others.appendChild(s);
  }
  if (kinds.size > 1) {
    const s = document.createElement("span");
    s.className = "disagree";
    s.textContent = "reviewers disagree";
    others.appendChild(s);
  }
  $("note").value = (mine(it.id) || {}).note || "";
}

async function decide(decision, criterion) {
  const it = state.list[state.pos];
  if (!it) return;
  const body = { queue: state.queue, id: it.id, decision: decision, criterion: criterion || "",
                 note: $("note").value };
  try {
    const res = await api("/api/decide", { method: "POST", headers: { "Content-Type": "application/json" },
                                            body: JSON.stringify(body) });
    state.decisions[it.id] = res.decisions;
  } catch (e) {
    $("status").textContent = `not saved: ${e.message}`;
    return;
  }
  if (!$("f-open").checked) state.pos += 1;  // an undecided-only list shrinks under the cursor instead
  render();
}

async function saveNote() {
  const it = state.list[state.pos], d = it && mine(it.id);
  $("note").blur();
  if (d) {  // a note on a decided item is a new row with the same decision
    const keepPos = state.pos;
    await decide(d.decision, d.criterion);
    state.pos = keepPos;
    render();
  }
}

function zoom(src) { $("zoom").querySelector("img").src = src; $("zoom").hidden = false; }

function move(step) { state.pos += step; render(); }

function cycleQueue(step) {
  const qs = Object.keys(NAMES);
  switchQueue(qs[(qs.indexOf(state.queue) + step + qs.length) % qs.length]);
}

document.addEventListener("keydown", (e) => {
  if (e.target === $("note")) {
    if (e.key === "Enter") { e.preventDefault(); saveNote(); }
    if (e.key === "Escape") $("note").blur();
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || e.target.tagName === "SELECT") return;
  if (!$("zoom").hidden) { if (e.key === "Escape" || e.key === "z") $("zoom").hidden = true; return; }
  const it = state.list[state.pos];
  if (e.key === "k") decide("keep");
  else if (KEYS[e.key]) decide("discard", KEYS[e.key]);
  else if (e.key === "n") { e.preventDefault(); $("note").focus(); }
  else if (e.key === "j" || e.key === "ArrowRight" || e.key === "ArrowDown") move(1);
  else if (e.key === "ArrowLeft" || e.key === "ArrowUp") move(-1);
  else if (e.key === "]") cycleQueue(1);
  else if (e.key === "[") cycleQueue(-1);
  else if (e.key === "z" && it) zoom($("views").querySelector("img").src);
  else return;
  e.preventDefault();
});

$("zoom").onclick = () => { $("zoom").hidden = true; };
for (const id of ["f-tone", "f-disease", "f-flag", "f-open", "f-sort"]) {
  $(id).addEventListener("change", () => { state.pos = 0; render(); $(id).blur(); });
}

async function start() {
  const items = await api("/api/items");
  state.queues = items.queues;
  state.reviewer = items.reviewer;
  state.decisions = await api("/api/decisions");
  $("who").textContent = `reviewer: ${state.reviewer}`;
  const first = Object.keys(NAMES).find((q) => (state.queues[q] || []).length) || "healthy";
  switchQueue(first);
  document.body.dataset.ready = "1";
}

start().catch((e) => { $("status").textContent = `could not load the review: ${e.message}`; });
