// The big screen's detail cards: who answers for a place (names and phones, not codes), deadlines and
// the time left, status, card, and one click to the desk. Names come from GET /map/duty, asked once per
// batch of codes and kept for the page's life (a card asks afresh for its grid's workers).
import { getJSON, esc, timeText, STATE_NAMES, CARD_NAMES } from "/static/common.js";

const cache = { grids: new Map(), areas: new Map(), departments: new Map() };
const missing = { grids: new Set(), areas: new Set(), departments: new Set() };

// What the tiles already say (label points carry names): the feed needs no request for these.
export function learn(kind, code, name) {
  if (code && name && !cache[kind].has(code)) cache[kind].set(code, { name });
}

export async function duty({ grids = [], areas = [], departments = [] }, { fresh = false } = {}) {
  const want = (kind, codes, full) => [...new Set(codes.filter(Boolean))]
    .filter((c) => !missing[kind].has(c) && (fresh || !cache[kind].has(c) || (full && !cache[kind].get(c).full)));
  const ask = { grids: want("grids", grids, true), areas: want("areas", areas), departments: want("departments", departments) };
  if (!ask.grids.length && !ask.areas.length && !ask.departments.length) return;
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(ask)) if (v.length) q.set(k, v.join(","));
  let res;
  try { res = await getJSON("/map/duty?" + q); } catch (err) { console.warn(err); return; }
  for (const [c, v] of Object.entries(res.grids || {})) cache.grids.set(c, { ...v, full: true });
  for (const [c, name] of Object.entries(res.areas || {})) cache.areas.set(c, { name });
  for (const [c, name] of Object.entries(res.departments || {})) cache.departments.set(c, { name });
  for (const k of Object.keys(ask)) for (const c of ask[k]) if (!cache[k].has(c)) missing[k].add(c);
}

export function nameOf(kind, code) { const v = cache[kind].get(code); return v ? v.name : null; }
export function gridOf(code) { return cache.grids.get(code) || null; }
const isArea = (code) => /^\d{12}$/.test(code || "");
// A handling unit: a town (12-digit code) or a department (a short code).
export function unitName(code) { return code ? (isArea(code) ? nameOf("areas", code) : nameOf("departments", code)) || code : null; }
export function unitCodes(codes) {
  const list = codes.filter(Boolean);
  return { areas: list.filter(isArea), departments: list.filter((c) => !isArea(c)) };
}

// Where a thing is, in words: grid · village · town (names; a code only when no name is known).
export function placeText(gridCode, townCode) {
  const g = gridCode ? cache.grids.get(gridCode) : null;
  const town = nameOf("areas", townCode || (g && g.town_code)) || (g && g.town_name) || null;
  return [town, g ? g.name : null].filter(Boolean).join(" · ") || null;
}

export const CHANNEL_NAMES = { hotline: "12345 热线", app: "随手拍", wechat: "微信公众号", patrol: "网格员巡查", camera: "视频告警", sensor: "感知告警" };
export const SEVERITY_NAMES = { general: "一般", important: "重要", urgent: "重要紧急" };
export const CLOCK_NAMES = { dispatch: "派遣时限", sign: "签收时限", complete: "办结时限" };

// Time to a deadline on the wall clock: "剩余 3 小时 20 分" or "已超时 2 天 4 小时".
export function timeLeft(due, now = Date.now()) {
  if (!due) return null;
  const ms = new Date(due).getTime() - now, abs = Math.abs(ms);
  const d = Math.floor(abs / 864e5), h = Math.floor((abs % 864e5) / 36e5), m = Math.floor((abs % 36e5) / 6e4);
  const span = d ? `${d} 天 ${h} 小时` : h ? `${h} 小时 ${m} 分` : `${Math.max(m, 1)} 分钟`;
  return ms >= 0 ? { over: false, text: "剩余 " + span } : { over: true, text: "已超时 " + span };
}

export function cardBadge(card) {
  const c = card || "ok";
  return `<em class="badge card-${esc(c)}">${esc(c === "red" ? "红牌督办" : c === "yellow" ? "黄牌警示" : CARD_NAMES[c] || c)}</em>`;
}

// The grid's people: grid chief first, names and phones (a phone is a tel: link on a touch screen).
export function peopleHtml(grid, { limit = 3 } = {}) {
  if (!grid) return `<dd class="muted">—</dd>`;
  const workers = grid.workers || [];
  if (!workers.length) return `<dd class="muted">未配备网格员</dd>`;
  return `<dd class="people">${workers.slice(0, limit).map((w) => `<span class="person" data-worker="${esc(w.id)}"><b>${esc(w.name)}</b>
    <small>${esc(w.role_name || "")}${w.on_duty === false ? " · 离岗" : ""}</small>${w.phone ? ` <a href="tel:${esc(w.phone)}">${esc(w.phone)}</a>` : ""}</span>`).join("")}
    ${workers.length > limit ? `<small class="muted">等 ${workers.length} 人</small>` : ""}</dd>`;
}

export function deadlineHtml(kind, due) {
  const left = timeLeft(due);
  if (!left) return `<dt>时限</dt><dd class="muted">无进行中的时限</dd>`;
  return `<dt>${esc(CLOCK_NAMES[kind] || "时限")}</dt><dd>${esc(timeText(due))} <b class="left ${left.over ? "over" : ""}">${esc(left.text)}</b></dd>`;
}

export function deskLink(href, text = "在受理台处理") {
  return `<a class="button desk-link" href="${esc(href)}" target="_top">${esc(text)} →</a>`;
}

// A ticket: what the commander asks — status, card, deadline and time left, who handles it, who is on
// the ground (the grid's workers), where, what; and the desk one click away.
export function ticketHtml(t) {
  const grid = gridOf(t.grid_code);
  const dueKind = t.running_clock || (t.state === "received" || t.state === "returned" ? "dispatch" : t.state === "dispatched" ? "sign" : null);
  const due = t.running_due || (dueKind === "dispatch" ? t.dispatch_due : dueKind === "sign" ? t.sign_due : null);
  const unit = t.assignee ? unitName(t.assignee) : null;
  const card = t.live_card || t.card;
  return `<div class="card-head"><h2>工单 #${esc(t.id)} · ${esc(t.category_name || t.category)}</h2>${cardBadge(card)}</div>
    <dl class="duty" data-ticket="${esc(t.id)}">
      <dt>状态</dt><dd><b class="state">${esc(STATE_NAMES[t.state] || t.state)}</b> · ${esc(SEVERITY_NAMES[t.severity] || t.severity || "")}</dd>
      ${deadlineHtml(dueKind, due)}
      <dt>承办单位</dt><dd>${esc(unit || "待派遣")}${t.department && t.department !== t.assignee ? ` <small class="muted">主责 ${esc(unitName(t.department))}</small>` : ""}</dd>
      <dt>网格员</dt>${peopleHtml(grid)}
      <dt>位置</dt><dd>${esc(placeText(t.grid_code, t.town_code) || "未落图")}${t.address ? `<br><small>${esc(t.address)}</small>` : ""}</dd>
      <dt>来源</dt><dd>${esc(CHANNEL_NAMES[t.channel] || t.channel || "—")} · ${esc(timeText(t.created_at))}</dd>
      <dt>描述</dt><dd class="desc">${esc(t.description)}</dd>
    </dl>${deskLink(`/desk?ticket=${encodeURIComponent(t.id)}`)}`;
}

// The most urgent of a list of open tickets: red first, then the nearest deadline.
const OPEN = new Set(["received", "returned", "dispatched", "signed", "handling"]);
export function urgent(items) {
  const rank = { red: 0, yellow: 1, ok: 2 };
  const dueOf = (t) => new Date(t.state === "received" || t.state === "returned" ? t.dispatch_due : t.state === "dispatched" ? t.sign_due : t.complete_due || 0).getTime() || Infinity;
  return items.filter((t) => OPEN.has(t.state)).sort((a, b) => (rank[a.card] ?? 3) - (rank[b.card] ?? 3) || dueOf(a) - dueOf(b));
}
export function dueOfSummary(t) {
  if (t.state === "received" || t.state === "returned") return ["dispatch", t.dispatch_due];
  if (t.state === "dispatched") return ["sign", t.sign_due];
  return ["complete", t.complete_due];
}

// Grid card extras: the base data (人口、房屋、单位) when GET /grids/{code}/base-summary answers.
const BASE_NAMES = [["households", "户数"], ["residents", "常住人口"], ["buildings", "房屋"], ["businesses", "商户"], ["organisations", "组织"], ["key_sites", "重点场所"]];
export async function baseSummary(code) {
  const res = await fetch(`/grids/${encodeURIComponent(code)}/base-summary`).catch(() => null);
  if (!res || res.status !== 200) return null; // 404: base data not loaded (yet) — the card says nothing more
  return res.json().catch(() => null);
}
export function baseHtml(s) {
  if (!s) return "";
  return `<h3>基础数据</h3><div class="figures base">${BASE_NAMES.map(([k, n]) => `<div><b>${esc(s[k] ?? "—")}</b><span>${n}</span></div>`).join("")}</div>`;
}
