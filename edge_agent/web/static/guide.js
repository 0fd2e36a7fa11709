// The kiosk's 办事指南: uses the kiosk page's take(), closeOverlays() and showNotice().
(function () {
  const list = document.getElementById("guide-list");
  const detail = document.getElementById("guide-detail");
  const status = document.getElementById("guide-status");
  const search = document.getElementById("guide-search");
  let shown = null;        // the item whose guide is open
  let listQuery = {};      // what the list shows: {service, name} or {q}
  let idleTimer = null;

  // Left open, a guide closes by itself before the next resident comes.
  function keepOpen() {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => { list.hidden = true; detail.hidden = true; }, 120000);
  }
  document.querySelectorAll(".overlay.guide").forEach(o => o.addEventListener("pointerdown", keepOpen));

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function openList(query) {
    listQuery = query;
    const params = new URLSearchParams();
    if (query.service) params.set("service", query.service);
    if (query.q) params.set("q", query.q);
    const answer = await fetch(`/api/items?${params}`);
    const items = answer.ok ? (await answer.json()).items : [];
    document.getElementById("guide-list-title").textContent =
      query.name ? `${query.name} · 办事指南` : (query.q ? `“${query.q}”的查询结果` : "办事指南 · 全部事项");
    document.getElementById("guide-items").replaceChildren(...items.map(item => {
      const button = el("button", "guide-item");
      button.dataset.code = item.code;
      button.append(el("span", "item-name", item.name),
                    el("span", "item-meta", `${item.kind_label} · 承诺时限：${item.promised_text} · ${item.service_name}`));
      button.onclick = () => openItem(item.code);
      const li = el("li");
      li.append(button);
      return li;
    }));
    document.getElementById("guide-empty").hidden = items.length > 0;
    closeOverlays();
    list.hidden = false;
    keepOpen();
  }

  async function openItem(code) {
    const answer = await fetch(`/api/items/${encodeURIComponent(code)}`);
    if (!answer.ok) { showNotice("该事项已不在本中心办理，请咨询工作人员"); return; }
    const item = await answer.json();
    shown = item;
    document.getElementById("guide-name").textContent = item.name;
    const fields = document.getElementById("guide-fields");
    fields.replaceChildren();
    function field(label, value) {
      if (value === "" || value === undefined || value === null) return;
      const dd = el("dd");
      if (value instanceof Node) dd.append(value); else dd.textContent = value;
      fields.append(el("dt", "", label), dd);
    }
    const materials = el("ol", "materials");
    materials.dataset.field = "materials";
    for (const m of item.materials) materials.append(el("li", "", m.text));
    field("办件类型", item.kind_label);
    field("受理条件", item.conditions);
    field("申请材料", item.materials.length ? materials : "无需提交材料");
    field("办理时限", item.legal_text);
    field("承诺时限", item.promised_text);
    field("收费标准", item.fee);
    field("收费依据", item.fee_basis);
    field("办理依据", item.basis);
    field("办理地点", item.location);
    field("咨询电话", item.phone);
    field("事项编码", item.code);
    status.textContent = "";
    closeOverlays();
    detail.hidden = false;
    keepOpen();
  }

  document.querySelectorAll("button.guide-open").forEach(b => b.onclick = () =>
    openList({service: b.dataset.guide, name: b.closest(".service-tile").querySelector(".service").dataset.name}));
  const browse = document.getElementById("guide-browse");
  if (browse) browse.onclick = () => openList({});
  document.getElementById("guide-search-form").onsubmit = event => {
    event.preventDefault();
    openList({q: search.value.trim()});
  };
  document.getElementById("guide-all").onclick = () => { search.value = ""; openList({}); };
  document.querySelectorAll("button.guide-close").forEach(b => b.onclick = closeOverlays);
  document.getElementById("guide-back").onclick = () => openList(listQuery);
  document.getElementById("guide-print").onclick = async () => {
    if (!shown) return;
    status.textContent = "正在打印……";
    const result = await postJSON(`/api/items/${encodeURIComponent(shown.code)}/notice`, {});
    status.textContent = result.ok && result.data.printed ? "一次性告知书已打印，请取走"
      : "打印失败，请咨询工作人员";
  };
  document.getElementById("guide-take").onclick = () => { if (shown) take(shown.prefix, shown.code); };
})();
