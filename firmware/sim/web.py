"""The simulator's control page: stdlib asyncio HTTP, no framework.

GET  /            the page (模拟设备): each window's display and pad screen,
                  five buttons per pad, labelled with what they mean now (the five
                  grades, or after a 差评 its five reasons); it polls /state.json
GET  /state.json  SimulatedCenter.state()
GET  /screen/<device id>.png
                  the device's panel in pixels, drawn for this moment (HUB12 LEDs, OLED)
POST /press       window=3&score=5 (form) or {"window": 3, "score": 5} (JSON):
                  press a pad button; JSON answer {"ok": true, "sent": bool}
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
from typing import Any
from urllib.parse import parse_qs

from firmware.sim.center import SimulatedCenter
from firmware.sim.hardware import SimButtons

MAX_BODY = 4096

STATUS_TEXT = {200: "OK", 303: "See Other", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
               413: "Payload Too Large"}

PAGE_CSS = """
body { font-family: "Noto Sans CJK SC", "Microsoft YaHei", sans-serif; margin: 1.5rem;
       background: #f4f5f7; color: #222; }
h1 { font-size: 1.5rem; margin: 0 0 .25rem 0; }
.meta { color: #666; margin-bottom: 1rem; }
.windows { display: flex; flex-wrap: wrap; gap: 1rem; }
.window { background: #fff; border-radius: 8px; padding: 1rem; width: 22.5rem; box-shadow: 0 1px 3px rgba(0,0,0,.15); }
.window h2 { font-size: 1.1rem; margin: 0 0 .5rem 0; }
.label { font-size: .85rem; color: #555; margin: .5rem 0 .25rem 0; display: flex; justify-content: space-between; }
.screen { background: #111; color: #f33; font-size: 1.3rem; padding: .5rem .75rem; min-height: 3.5rem;
          border-radius: 4px; font-weight: bold; }
.screen.pad { background: #0b2540; color: #e8f1ff; font-size: 1.05rem; font-weight: normal; }
.screen div { min-height: 1.5rem; }
.online { color: #1a7f37; } .offline { color: #c62828; }
.buttons { display: flex; gap: .25rem; margin-top: .5rem; flex-wrap: wrap; }
.buttons button { flex: 1 1 auto; padding: .5rem .2rem; font-size: .85rem; white-space: nowrap;
                  border: 1px solid #888; border-radius: 4px; background: #fafafa; cursor: pointer; }
.buttons button:hover { background: #e3f2fd; }
.result { min-height: 1.2rem; font-size: .85rem; color: #555; margin-top: .25rem; }
.pixels { display: block; width: 100%; image-rendering: pixelated; border-radius: 4px; margin-bottom: .25rem; }
.buttons button.lit { box-shadow: 0 0 0 2px #f5a623 inset; background: #fff6e0; }
"""

PAGE_JS = """
async function refresh() {
  try {
    const response = await fetch('/state.json', {cache: 'no-store'});
    const state = await response.json();
    for (const w of state.windows) {
      for (const kind of ['display', 'pad']) {
        const device = w[kind];
        const screen = document.getElementById(kind + '-' + w.window);
        if (!screen) continue;
        screen.replaceChildren(...device.lines.map(text => {
          const line = document.createElement('div');
          line.textContent = text;
          return line;
        }));
        const picture = document.getElementById(kind + '-png-' + w.window);
        if (picture) picture.src = '/screen/' + device.device_id + '.png?t=' + Date.now();
        if (device.leds) {
          document.querySelectorAll('#buttons-' + w.window + ' button').forEach((button, i) => {
            button.classList.toggle('lit', Boolean(device.leds[i]));
            if (device.buttons) button.textContent = device.buttons[i];
          });
          document.getElementById('buttons-' + w.window).dataset.mode = device.asking_reason ? 'reason' : 'rating';
        }
        const status = document.getElementById(kind + '-status-' + w.window);
        status.textContent = device.online ? '在线' : '离线';
        status.className = device.online ? 'online' : 'offline';
      }
    }
  } catch (err) { /* the simulator may be restarting: try again */ }
}
async function press(form, score) {
  const window = form.dataset.window;
  const result = document.getElementById('result-' + window);
  const response = await fetch('/press', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                          body: JSON.stringify({window: Number(window), score: Number(score)})});
  const answer = await response.json();
  const done = form.dataset.mode === 'reason' ? '已提交原因' : '已提交评价';
  result.textContent = answer.sent ? done : '当前没有待评价的业务';
  refresh();
}
document.querySelectorAll('form.buttons').forEach(form => {
  form.addEventListener('submit', event => {
    event.preventDefault();
    press(form, event.submitter.value);
  });
});
refresh();
setInterval(refresh, 500);
"""


def _lines_html(lines: list[str]) -> str:
    return "".join(f"<div>{html.escape(line)}</div>" for line in lines)


def _status_html(element_id: str, online: bool) -> str:
    cls, text = ("online", "在线") if online else ("offline", "离线")
    return f'<span id="{element_id}" class="{cls}">{text}</span>'


def render_page(state: dict[str, Any]) -> str:
    cards = []
    for w in state["windows"]:
        window = w["window"]
        display, pad = w["display"], w["pad"]
        labels = pad.get("buttons") or [label for _score, label in SimButtons.LABELS]
        buttons = "".join(
            f'<button type="submit" name="score" value="{score}">{html.escape(label)}</button>'
            for (score, _grade), label in zip(SimButtons.LABELS, labels, strict=True)
        )
        mode = "reason" if pad.get("asking_reason") else "rating"
        cards.append(f"""
<section class="window" data-window="{window}">
  <h2>{window}号窗口</h2>
  <div class="label"><span>叫号屏 {html.escape(display["device_id"])}</span>
    {_status_html(f"display-status-{window}", display["online"])}</div>
  <img class="pixels" id="display-png-{window}" alt="叫号屏画面" src="/screen/{html.escape(display["device_id"])}.png">
  <div class="screen display" id="display-{window}">{_lines_html(display["lines"])}</div>
  <div class="label"><span>评价器 {html.escape(pad["device_id"])}</span>
    {_status_html(f"pad-status-{window}", pad["online"])}</div>
  <img class="pixels" id="pad-png-{window}" alt="评价器画面" src="/screen/{html.escape(pad["device_id"])}.png">
  <div class="screen pad" id="pad-{window}">{_lines_html(pad["lines"])}</div>
  <form class="buttons" id="buttons-{window}" method="post" action="/press" data-window="{window}"
        data-mode="{mode}">
    <input type="hidden" name="window" value="{window}">{buttons}
  </form>
  <div class="result" id="result-{window}"></div>
</section>""")
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>模拟设备</title>
<style>{PAGE_CSS}</style>
</head>
<body>
<h1>模拟设备</h1>
<div class="meta">服务中心 {html.escape(state["center"])} · 消息服务器 {html.escape(state["broker"])}</div>
<div class="windows">{"".join(cards)}</div>
<script>{PAGE_JS}</script>
</body>
</html>
"""


class ControlServer:
    """Serves the control page of a SimulatedCenter on 127.0.0.1:port."""

    def __init__(self, center: SimulatedCenter, port: int, host: str = "127.0.0.1") -> None:
        self.center = center
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, content_type, body, extra = await self._respond(reader)
        except Exception as exc:  # a bad request must not stop the simulator
            status, content_type, body, extra = 400, "text/plain; charset=utf-8", str(exc).encode(), {}
        head = [f"HTTP/1.1 {status} {STATUS_TEXT.get(status, '')}", f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}", "Cache-Control: no-store", "Connection: close"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        try:
            writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[int, str, bytes, dict[str, str]]:
        request_line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3:
            return 400, "text/plain", b"bad request line", {}
        method, target, _ = parts
        headers: dict[str, str] = {}
        while True:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if length > MAX_BODY:
            return 413, "text/plain", b"body too large", {}
        body = await asyncio.wait_for(reader.readexactly(length), 10) if length else b""
        path = target.split("?", 1)[0]
        if path == "/" and method == "GET":
            page = render_page(self.center.state())
            return 200, "text/html; charset=utf-8", page.encode(), {}
        if path == "/state.json" and method == "GET":
            return 200, "application/json", _json(self.center.state()), {}
        if path.startswith("/screen/") and path.endswith(".png") and method == "GET":
            return self._screen(path[len("/screen/"):-len(".png")])
        if path == "/press":
            if method != "POST":
                return 405, "text/plain", b"POST only", {"Allow": "POST"}
            return self._press(headers.get("content-type", ""), body)
        return 404, "text/plain", b"not found", {}

    def _screen(self, device_id: str) -> tuple[int, str, bytes, dict[str, str]]:
        try:
            picture = self.center.device(device_id).png()
        except KeyError:
            picture = None
        if picture is None:
            return 404, "text/plain", b"no such screen", {}
        return 200, "image/png", picture, {}

    def _press(self, content_type: str, body: bytes) -> tuple[int, str, bytes, dict[str, str]]:
        if content_type.startswith("application/json"):
            data = json.loads(body or b"{}")
            window, score = data.get("window"), data.get("score")
            is_form = False
        else:
            form = parse_qs(body.decode())
            window, score = form.get("window", [None])[0], form.get("score", [None])[0]
            is_form = True
        try:
            window, score = int(window), int(score)
            pad = self.center.pad(window)
        except (TypeError, ValueError, KeyError):
            return 400, "application/json", _json({"ok": False, "error": "unknown window or score"}), {}
        try:
            sent = pad.press(score)
        except ValueError as exc:
            return 400, "application/json", _json({"ok": False, "error": str(exc)}), {}
        if is_form:  # the page without JavaScript: back to it
            return 303, "text/plain", b"", {"Location": "/"}
        return 200, "application/json", _json({"ok": True, "sent": sent, "window": window, "score": score}), {}


def _json(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False).encode("utf-8")
