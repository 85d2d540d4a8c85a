// 随手拍: the public report form and the follow-up page (no account).
"use strict";
const $ = (id) => document.getElementById(id);
const STARS = { 5: "非常满意", 4: "满意", 3: "基本满意", 2: "不满意", 1: "非常不满意" };

async function call(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) throw new Error((body && body.detail) || `HTTP ${response.status}`);
  return body;
}

function reportPage() {
  let point = null;
  call("/public/categories").then((cats) => {
    const groups = {};
    for (const c of cats) (groups[c.major_name] = groups[c.major_name] || []).push(c);
    for (const [major, items] of Object.entries(groups)) {
      const g = document.createElement("optgroup");
      g.label = major;
      for (const c of items) g.append(new Option(c.name, c.code));
      $("category").append(g);
    }
  });
  $("use-location").addEventListener("click", () => {
    $("place").textContent = "正在定位…";
    navigator.geolocation.getCurrentPosition((p) => {
      point = { lon: p.coords.longitude, lat: p.coords.latitude };
      $("place").textContent = `位置：${point.lon.toFixed(5)}, ${point.lat.toFixed(5)}（已定位）`;
    }, (e) => { $("place").textContent = `无法定位：${e.message}，请填写地址`; }, { enableHighAccuracy: true, timeout: 15000 });
  });
  $("lookup").addEventListener("click", (ev) => {
    ev.preventDefault();
    const code = prompt("请输入查询码");
    if (code) location.href = `/report/${encodeURIComponent(code.trim().toUpperCase())}`;
  });
  $("public-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    if (!point && !form.get("address").trim()) { $("msg").textContent = "请使用定位或填写地址"; return; }
    if (point) { form.append("lon", point.lon); form.append("lat", point.lat); }
    if (!$("photo").files.length) form.delete("photo");
    $("send").disabled = true;
    $("msg").textContent = "提交中…";
    try {
      const out = await call("/public/reports", { method: "POST", body: form });
      $("public-form").hidden = true;
      $("done").hidden = false;
      $("code").textContent = out.code;
      $("follow-link").href = `/report/${out.code}`;
      $("msg").textContent = "";
    } catch (e) {
      $("msg").textContent = `提交失败：${e.message}`;
      $("send").disabled = false;
    }
  });
}

function followPage(code) {
  const show = (r) => {
    $("title").textContent = `${r.category_name} · 查询码 ${r.code}`;
    $("summary").textContent = `${r.town_name || ""} ${r.village_name || ""}：${r.description}`;
    $("state").textContent = `当前状态：${r.state_name}${r.satisfied === true ? " · 您的评价：满意" : r.satisfied === false ? " · 您的评价：不满意，已退回重新办理" : ""}`;
    $("history").innerHTML = "";
    for (const h of r.history) {
      const li = document.createElement("li");
      li.textContent = `${new Date(h.at).toLocaleString("zh-CN", { timeZone: "Asia/Shanghai" })}　${h.text}`;
      $("history").append(li);
    }
    $("rate").hidden = !r.can_rate;
  };
  call(`/public/reports/${encodeURIComponent(code)}`).then(show)
    .catch((e) => { $("title").textContent = "未找到该查询码"; $("msg").textContent = e.message; });
  for (const b of document.querySelectorAll("#stars button")) {
    b.addEventListener("click", async () => {
      try {
        show(await call(`/public/reports/${encodeURIComponent(code)}/rating`, { method: "POST",
          headers: { "Content-Type": "application/json" }, body: JSON.stringify({ satisfaction: Number(b.dataset.score) }) }));
        $("msg").textContent = `感谢您的评价：${STARS[b.dataset.score]}`;
      } catch (e) { $("msg").textContent = `评价失败：${e.message}`; }
    });
  }
}

if (document.body.dataset.code) followPage(document.body.dataset.code); else reportPage();
