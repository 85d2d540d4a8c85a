// Shared helpers for OneMap's pages: JSON over HTTP, the API's own paths, small formatting.
export async function getJSON(url, options) {
  const res = await fetch(url, options);
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { const err = new Error(body.detail || url + " → " + res.status); err.status = res.status; err.body = body; throw err; }
  return body;
}

export function postJSON(url, data) {
  return getJSON(url, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(data) });
}

let paths = null;
// The API's paths (from its OpenAPI document): layers whose endpoints have not landed stay absent.
export async function apiPaths() {
  if (!paths) paths = getJSON("/openapi.json").then((doc) => doc.paths || {}).catch(() => ({}));
  return paths;
}

export async function hasPath(path, method = "get") {
  const p = await apiPaths();
  return Boolean(p[path] && p[path][method]);
}

export function esc(v) {
  return String(v ?? "—").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

export function pct(v) { return v === null || v === undefined || Number.isNaN(v) ? "—" : (100 * v).toFixed(1) + "%"; }

const DAY = new Intl.DateTimeFormat("sv-SE", { timeZone: "Asia/Shanghai" }); // YYYY-MM-DD
const MOMENT = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });

export function shanghaiDate(d = new Date()) {
  return DAY.format(d);
}

export function timeText(iso) {
  if (!iso) return "—";
  return MOMENT.format(new Date(iso));
}

export const STATE_NAMES = { received: "受理", dispatched: "已派单", signed: "已签收", handling: "处置中", completed: "已办结",
  reviewed: "已审核", revisited: "已回访", closed: "已结案", returned: "已返单", signed_off: "已销号" };
// Every move and system event a ticket's timeline (and the live stream) can carry, in Chinese. 数字城管
// terms (GB/T 30428 series): 核实 checks a report before it is filed and dispatched (派遣); 核查 checks
// the result on site after 办结. An event this list does not know yet shows as 工单更新, never as its
// internal English name.
export const MOVE_NAMES = { receive: "受理", create: "受理", check: "核实", reject: "不予立案", grab: "抢单", dispatch: "派遣",
  split: "分单", join: "联单", return: "返单", sign: "签收", start: "开始处置", complete: "办结", verify_fix: "核查",
  review_pass: "审核通过", review_fail: "审核退回", revisit: "回访", close: "结案", sign_off: "销号", extend: "延期",
  card: "督办", place: "定位", attach: "上传照片", duplicate: "重复上报", alarm: "告警更新" };
export function moveName(move) { return move ? MOVE_NAMES[move] || "工单更新" : ""; }

export const CARD_NAMES = { ok: "正常", yellow: "黄牌", red: "红牌" };
export const CARD_COLOURS = { ok: "#3ddc97", yellow: "#ffd166", red: "#ff4d5e" };
