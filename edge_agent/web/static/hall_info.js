// The hall display's rotating panel: items (a few per page), opening hours, phone numbers.
(function () {
  const ITEMS_PER_PAGE = 4;  // what the side column holds on a 1366x768 screen
  // ?rotate_s=N turns pages faster (a test, a technician checking the screen); 10 s reads comfortably.
  const ROTATE_S = Number(new URLSearchParams(location.search).get("rotate_s")) || 10;
  const panel = document.getElementById("hall-info");
  let pages = [];
  let next = 0;

  function buildPages(answer) {
    const built = [];
    const items = answer.items;
    for (let i = 0; i < items.length; i += ITEMS_PER_PAGE) {
      built.push({kind: "items", title: items.length > ITEMS_PER_PAGE ?
                    `办理事项（${i / ITEMS_PER_PAGE + 1}/${Math.ceil(items.length / ITEMS_PER_PAGE)}）` : "办理事项",
                  lines: items.slice(i, i + ITEMS_PER_PAGE).map(item =>
                    `${item.name}（${item.kind_label}，${item.promised_days ? "承诺" : ""}${item.promised_text}）`)});
    }
    const center = answer.center;
    if (center.opening_hours) built.push({kind: "hours", title: "办公时间", lines: [center.opening_hours]});
    const phones = [];
    if (center.consult_phone) phones.push(`咨询电话：${center.consult_phone}`);
    if (center.complaint_phone) phones.push(`投诉电话：${center.complaint_phone}`);
    const byService = new Map();
    for (const item of items) {
      if (item.phone && !byService.has(item.service_name)) byService.set(item.service_name, item.phone);
    }
    for (const [service, phone] of byService) phones.push(`${service}咨询：${phone}`);
    if (phones.length) built.push({kind: "phones", title: "联系电话", lines: phones});
    return built;
  }

  async function turn() {
    if (next === 0) {  // a new round: read what the center has now
      try {
        const answer = await fetch("/api/items");
        if (answer.ok) pages = buildPages(await answer.json());
      } catch (e) { /* the agent restarting: keep the pages we have */ }
    }
    panel.hidden = pages.length === 0;
    if (pages.length) {
      const page = pages[next % pages.length];
      panel.dataset.page = page.kind;
      document.getElementById("hall-info-title").textContent = page.title;
      document.getElementById("hall-info-lines").replaceChildren(...page.lines.map(text =>
        Object.assign(document.createElement("li"), {textContent: text})));
    }
    next = pages.length ? (next + 1) % pages.length : 0;
  }
  turn();
  setInterval(turn, ROTATE_S * 1000);
})();
