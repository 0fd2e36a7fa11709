"""An IP camera on loopback, as Hikvision-style cameras answer: JPEG snapshots behind HTTP digest auth.

Modes (`camera.mode`): "ok" (a real JPEG), "html" (200 with an HTML error page, as some cameras do
when the sensor fails), "truncated" (a JPEG cut before its end marker), "refuse_auth" (401 whatever
the credentials), "hang" (no answer until the client gives up). Stopping the server gives
"connection refused". The audio report answers at /ISAPI/System/TwoWayAudio/channels and
/ISAPI/Streaming/channels/101; `audio_mode` "ok", "none" (no input) or "missing" (404).
"""

from __future__ import annotations

import hashlib
import io
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image

SNAPSHOT_PATH = "/ISAPI/Streaming/channels/101/picture"
TWO_WAY_AUDIO_PATH = "/ISAPI/System/TwoWayAudio/channels"
STREAM_PATH = "/ISAPI/Streaming/channels/101"
REALM = "IP Camera(D1234)"

HTML_ERROR = b"<!DOCTYPE html><html><head><title>Error</title></head><body>Device Error</body></html>"
TWO_WAY_AUDIO_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<TwoWayAudioChannelList version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<TwoWayAudioChannel version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<id>1</id>
<enabled>false</enabled>
<audioCompressionType>G.711ulaw</audioCompressionType>
<audioInputType>%s</audioInputType>
<speakerVolume>50</speakerVolume>
<noisereduce>false</noisereduce>
</TwoWayAudioChannel>
</TwoWayAudioChannelList>
"""
STREAM_XML = b"""<?xml version="1.0" encoding="UTF-8"?>
<StreamingChannel version="2.0" xmlns="http://www.hikvision.com/ver20/XMLSchema">
<id>101</id>
<channelName>Camera 01</channelName>
<enabled>true</enabled>
<Video><enabled>true</enabled><videoCodecType>H.264</videoCodecType></Video>
<Audio><enabled>%s</enabled><audioInputChannelID>1</audioInputChannelID>
<audioCompressionType>G.711ulaw</audioCompressionType></Audio>
</StreamingChannel>
"""


def make_jpeg(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 120, 200)).save(buffer, "JPEG")
    return buffer.getvalue()


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _parse_digest(header: str) -> dict[str, str]:
    fields = {}
    for part in header[len("Digest "):].split(","):
        key, _, value = part.strip().partition("=")
        fields[key] = value.strip('"')
    return fields


class CameraServer:
    def __init__(self, username: str = "admin", password: str = "Cam-12345") -> None:
        self.username = username
        self.password = password
        self.mode = "ok"
        self.audio_mode = "ok"
        self.jpeg = make_jpeg()
        self.requests: list[str] = []
        self.authorized = 0
        self._stop = threading.Event()
        self._nonces: set[str] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="camera-double")

    def url(self, path: str = SNAPSHOT_PATH) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> CameraServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    def _check(self, method: str, header: str | None) -> bool:
        if self.mode == "refuse_auth" or not header or not header.startswith("Digest "):
            return False
        fields = _parse_digest(header)
        if fields.get("username") != self.username or fields.get("nonce") not in self._nonces:
            return False
        ha1 = _md5(f"{self.username}:{REALM}:{self.password}")
        ha2 = _md5(f"{method}:{fields.get('uri', '')}")
        expected = _md5(f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:auth:{ha2}")
        return secrets.compare_digest(expected, fields.get("response", ""))

    def _handler(self):
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                camera.requests.append(self.path)
                if camera.mode == "hang":
                    camera._stop.wait(30)
                    return
                if not camera._check("GET", self.headers.get("Authorization")):
                    nonce = secrets.token_hex(16)
                    camera._nonces.add(nonce)
                    challenge = f'Digest realm="{REALM}", qop="auth", nonce="{nonce}", algorithm=MD5'
                    self._send(401, b"<html><body>401 Unauthorized</body></html>", "text/html",
                               {"WWW-Authenticate": challenge})
                    return
                camera.authorized += 1
                if self.path == SNAPSHOT_PATH:
                    if camera.mode == "html":
                        self._send(200, HTML_ERROR, "text/html")
                    elif camera.mode == "truncated":
                        self._send(200, camera.jpeg[: len(camera.jpeg) // 2], "image/jpeg")
                    else:
                        self._send(200, camera.jpeg, "image/jpeg")
                elif self.path in (TWO_WAY_AUDIO_PATH, STREAM_PATH) and camera.audio_mode != "missing":
                    on = camera.audio_mode == "ok"
                    if self.path == TWO_WAY_AUDIO_PATH:
                        body = TWO_WAY_AUDIO_XML % (b"MicIn" if on else b"")
                    else:
                        body = STREAM_XML % (b"true" if on else b"false")
                    self._send(200, body, "application/xml")
                else:
                    self._send(404, b"<html><body>404 Not Found</body></html>", "text/html")

        return Handler
