"""Spoken calls: 请A零一二号到三号窗口办理 through the hall's speaker.

Synthesis is offline (espeak-ng's Mandarin voice `cmn-latn-pinyin`, which
reads Chinese characters correctly; the plain `cmn` voice does not), rendered
to WAV files under the data directory and kept as a cache. Calls are queued
and played one after another by one worker: a call is never cut off by the
next. A chime before the call and the number of repeats are configurable;
voice can be switched off in the config or at run time.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import shlex
import shutil
import struct
import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

from edge_agent.adapters.base import cancel_and_wait, start_kept_running

log = logging.getLogger(__name__)

DIGITS = "零一二三四五六七八九"
MAX_PENDING = 50  # calls waiting to be spoken; beyond this the speaker is clearly not keeping up


@dataclass(frozen=True)
class VoiceSettings:
    enabled: bool = True
    template: str = "请{number}号到{window}号窗口办理"
    repeat: int = 2  # each call is spoken this many times, one after another
    chime: bool = True  # a two-tone chime before the call
    voice: str = "cmn-latn-pinyin"
    speed: int = 150  # words per minute for espeak-ng; slower helps elderly residents
    player: tuple[str, ...] = ("aplay", "-q")  # the WAV file's path is appended (or replaces "{file}")
    player_timeout_s: float = 120.0  # a player that hangs longer is killed so later calls still play
    synthesizer: str = "espeak-ng"


def parse_voice_settings(raw: object, problems: list[str]) -> VoiceSettings:
    if not isinstance(raw, dict):
        problems.append("voice: must be a table")
        return VoiceSettings()
    default = VoiceSettings()
    enabled = raw.get("enabled", default.enabled)
    if not isinstance(enabled, bool):
        problems.append(f"voice.enabled: must be true or false, got {enabled!r}")
        enabled = default.enabled
    repeat = raw.get("repeat", default.repeat)
    if not isinstance(repeat, int) or isinstance(repeat, bool) or not 1 <= repeat <= 5:
        problems.append(f"voice.repeat: must be 1..5, got {repeat!r}")
        repeat = default.repeat
    speed = raw.get("speed", default.speed)
    if not isinstance(speed, int) or isinstance(speed, bool) or not 80 <= speed <= 450:
        problems.append(f"voice.speed: must be 80..450 words per minute, got {speed!r}")
        speed = default.speed
    template = str(raw.get("template", default.template))
    try:
        template.format(number="A001", window=1)
    except (KeyError, IndexError, ValueError):
        problems.append("voice.template: may only use {number} and {window}")
        template = default.template
    player = raw.get("player", list(default.player))
    if isinstance(player, str):
        player = shlex.split(player)
    if not isinstance(player, list) or not player or not all(isinstance(p, str) for p in player):
        problems.append("voice.player: must be a command, e.g. \"aplay -q\" or [\"aplay\", \"-q\"]")
        player = list(default.player)
    timeout = raw.get("player_timeout_s", default.player_timeout_s)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not 1 <= timeout <= 3600:
        problems.append(f"voice.player_timeout_s: must be 1..3600, got {timeout!r}")
        timeout = default.player_timeout_s
    return VoiceSettings(enabled=enabled, template=template, repeat=repeat, chime=bool(raw.get("chime", True)),
                         voice=str(raw.get("voice", default.voice)), speed=speed, player=tuple(player),
                         player_timeout_s=float(timeout), synthesizer=str(raw.get("synthesizer", "espeak-ng")))


def spell_digits(text: str) -> str:
    """A012 -> A零一二: a ticket number is read digit by digit, as residents read it."""
    return "".join(DIGITS[int(c)] if c.isdigit() else c for c in text)


def cardinal(number: int) -> str:
    """3 -> 三, 12 -> 十二, 105 -> 一百零五: how a window number is said (1..999)."""
    if not 0 < number < 1000:
        return spell_digits(str(number))
    hundreds, tens, ones = number // 100, number // 10 % 10, number % 10
    text = ""
    if hundreds:
        text += DIGITS[hundreds] + "百"
        if tens == 0 and ones:
            return text + "零" + DIGITS[ones]
    if tens:
        text += ("" if tens == 1 and not hundreds else DIGITS[tens]) + "十"
    if ones:
        text += DIGITS[ones]
    return text


def call_text(number: str, window: int, template: str = VoiceSettings.template) -> str:
    """The sentence spoken for a call: 请A零一二号到三号窗口办理."""
    return template.format(number=spell_digits(number), window=cardinal(window))


# -- rendering ------------------------------------------------------------------


def synthesize(text: str, path: Path, settings: VoiceSettings) -> None:
    """Render `text` to a WAV file with espeak-ng (offline); raises RuntimeError with its stderr."""
    tmp = path.with_suffix(".tmp")
    result = subprocess.run([settings.synthesizer, "-v", settings.voice, "-s", str(settings.speed), "-w", str(tmp),
                             "--", text], capture_output=True, timeout=60)
    if result.returncode != 0 or not tmp.exists():
        raise RuntimeError(f"{settings.synthesizer} failed ({result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()}")
    tmp.replace(path)


def _tone_frames(rate: int, frequency: float, seconds: float, volume: float = 0.35) -> bytes:
    count = int(rate * seconds)
    fade = max(1, int(rate * 0.01))  # 10 ms ramps: no click at either end
    frames = bytearray()
    for i in range(count):
        envelope = min(1.0, i / fade, (count - i) / fade)
        frames += struct.pack("<h", int(32767 * volume * envelope * math.sin(2 * math.pi * frequency * i / rate)))
    return bytes(frames)


def chime_frames(rate: int) -> bytes:
    """Ding-dong: two falling tones, the usual prelude of a hall call."""
    return _tone_frames(rate, 880.0, 0.35) + _tone_frames(rate, 660.0, 0.5)


def silence(rate: int, seconds: float) -> bytes:
    return b"\x00\x00" * int(rate * seconds)


def compose(speech: Path, out: Path, repeat: int, chime: bool) -> None:
    """One WAV for one call: [chime, pause] then the speech `repeat` times with a pause between."""
    with wave.open(str(speech), "rb") as source:
        if source.getsampwidth() != 2 or source.getnchannels() != 1:
            raise RuntimeError(f"{speech}: expected 16-bit mono speech")
        rate = source.getframerate()
        spoken = source.readframes(source.getnframes())
    parts = [chime_frames(rate), silence(rate, 0.3)] if chime else []
    for i in range(repeat):
        if i:
            parts.append(silence(rate, 0.8))
        parts.append(spoken)
    tmp = out.with_suffix(".tmp")
    with wave.open(str(tmp), "wb") as target:
        target.setnchannels(1)
        target.setsampwidth(2)
        target.setframerate(rate)
        target.writeframes(b"".join(parts))
    tmp.replace(out)


def render_call(text: str, directory: Path, settings: VoiceSettings) -> Path:
    """The WAV file of one call, rendered once and reused (same text and settings, same file)."""
    directory.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha1(f"{settings.synthesizer}|{settings.voice}|{settings.speed}|{text}".encode()).hexdigest()[:16]
    speech = directory / f"speech-{key}.wav"
    if not speech.exists():
        synthesize(text, speech, settings)
    call = directory / f"call-{key}-{settings.repeat}{'c' if settings.chime else ''}.wav"
    if not call.exists():
        compose(speech, call, settings.repeat, settings.chime)
    return call


# -- the hall's speaker -----------------------------------------------------------


@dataclass
class SpokenCall:
    number: str
    window: int
    text: str = ""
    wav: Path | None = None


class VoiceAnnouncer:
    """Adapter: a queue of calls played one at a time through the configured player."""

    name = "voice"

    def __init__(self, settings: VoiceSettings, directory: Path) -> None:
        self.settings = settings
        self.directory = Path(directory)
        self.enabled = settings.enabled
        self._queue: asyncio.Queue[SpokenCall] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None
        self.played = 0
        self.dropped = 0
        self.last_error = ""
        self.speaking: SpokenCall | None = None

    async def start(self) -> None:
        if self._worker is not None and not self._worker.done():
            return  # already running: one player at a time, always
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._worker = start_kept_running("voice", self._play_loop)
        if self.enabled and shutil.which(self.settings.synthesizer) is None:
            self.last_error = f"{self.settings.synthesizer} is not installed; calls are shown but not spoken"
            log.error("voice: %s", self.last_error)

    async def stop(self) -> None:
        if self._worker:
            await cancel_and_wait(self._worker)
            self._worker = None

    def health(self) -> dict:
        return {"ok": not self.enabled or not self.last_error, "enabled": self.enabled, "played": self.played,
                "queued": self._queue.qsize() if self._queue else 0, "dropped": self.dropped,
                "last_error": self.last_error}

    def set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        log.info("voice calls switched %s", "on" if enabled else "off")

    def announce(self, number: str, window: int) -> bool:
        """Queue a call (thread-safe; returns at once). False when voice is off, not started or full."""
        if not self.enabled or self._loop is None or self._queue is None:
            return False
        if self._queue.qsize() >= MAX_PENDING:
            self.dropped += 1
            log.warning("voice: %d calls already waiting; %s for window %d is not spoken", MAX_PENDING, number,
                        window)
            return False
        call = SpokenCall(number, window, call_text(number, window, self.settings.template))
        self._loop.call_soon_threadsafe(self._queue.put_nowait, call)
        return True

    async def idle(self) -> None:
        """Wait until every queued call has been played (for a clean stop and for tests)."""
        if self._queue is not None:
            await self._queue.join()

    async def _play_loop(self) -> None:
        assert self._queue is not None
        while True:
            call = await self._queue.get()
            try:
                self.speaking = call
                await self._speak(call)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken speaker must never stop the queue or the agent
                self.last_error = f"speaking {call.number} failed: {exc}"
                log.error("voice: %s", self.last_error)
            finally:
                self.speaking = None
                self._queue.task_done()

    async def _speak(self, call: SpokenCall) -> None:
        call.wav = await asyncio.to_thread(render_call, call.text, self.directory, self.settings)
        args = [a.replace("{file}", str(call.wav)) for a in self.settings.player]
        if not any("{file}" in a for a in self.settings.player):
            args.append(str(call.wav))
        process = await asyncio.create_subprocess_exec(*args, stdout=asyncio.subprocess.DEVNULL,
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            _, stderr = await asyncio.wait_for(process.communicate(), self.settings.player_timeout_s)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"{args[0]} did not finish within {self.settings.player_timeout_s:.0f} s") from None
        except asyncio.CancelledError:  # the agent stops: no player is left behind
            if process.returncode is None:
                process.kill()
            await process.wait()
            raise
        if process.returncode != 0:
            raise RuntimeError(f"{args[0]} exited with {process.returncode}: "
                               f"{stderr.decode(errors='replace').strip()[:200]}")
        self.played += 1
        self.last_error = ""
