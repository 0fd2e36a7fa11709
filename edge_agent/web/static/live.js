// Shared by every page: live state over server-sent events, and JSON posts.
function liveState(render) {
  let source, generation;
  function connect() {
    source = new EventSource("/api/events");
    source.onmessage = event => {
      const state = JSON.parse(event.data);
      // The center's configuration changed (the county's windows, staff, services): the page is drawn anew.
      if (generation !== undefined && state.config_generation !== generation) { location.reload(); return; }
      generation = state.config_generation;
      render(state);
    };
    source.onerror = () => { source.close(); setTimeout(connect, 2000); };
  }
  connect();
}

async function postJSON(url, body) {
  try {
    const response = await fetch(url, {method: "POST", headers: {"Content-Type": "application/json"},
                                       body: JSON.stringify(body)});
    const data = await response.json();
    if (!response.ok) {
      const detail = typeof data.detail === "string" ? data.detail : "操作失败";  // 422: a list of problems
      return {ok: false, error: detail, status: response.status};
    }
    return {ok: true, data, status: response.status};
  } catch (e) {
    return {ok: false, error: "网络连接失败，请稍后再试"};
  }
}
